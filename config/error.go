package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one missing or wrong key.
type Problem struct {
	Path    string // "azure.client_id", "tenants[0].id"
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Error lists every problem of a configuration, so an operator fixes them
// all in one go.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("config: %s: %s", e.File, strings.Join(parts, "; "))
}

type problems []Problem

func (ps *problems) add(path, msg string) { *ps = append(*ps, Problem{Path: path, Message: msg}) }

func (ps *problems) addf(path, format string, args ...any) {
	ps.add(path, fmt.Sprintf(format, args...))
}

// nodeAt is a YAML node with the key path it stands for, so that the line
// numbers in yaml's type errors can be turned into key paths.
type nodeAt struct {
	line int
	path string
	key  string // for key nodes: the key itself
	kind string // "key", "map", "seq", "scalar"
}

func keyPaths(root *yaml.Node) []nodeAt {
	var out []nodeAt
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			out = append(out, nodeAt{line: n.Line, path: path, kind: "map"})
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out = append(out, nodeAt{line: k.Line, path: p, key: k.Value, kind: "key"})
				walk(v, p)
			}
		case yaml.SequenceNode:
			out = append(out, nodeAt{line: n.Line, path: path, kind: "seq"})
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]")
			}
		case yaml.ScalarNode, yaml.AliasNode:
			out = append(out, nodeAt{line: n.Line, path: path, kind: "scalar"})
		}
	}
	walk(root, "")
	return out
}

var (
	lineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRE  = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	mismatchRE = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `[^`]*`)? into (.+)$")
)

// describeTypeError turns one of yaml's "line N: …" messages into a
// problem named by key path. Values are dropped: they may be secrets.
func describeTypeError(msg string, nodes []nodeAt) Problem {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Path: "yaml", Message: mismatchRE.ReplaceAllString(msg, "cannot unmarshal $1 into $2")}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	find := func(kind, key string) (string, bool) {
		for _, n := range nodes {
			if n.line == line && n.kind == kind && (key == "" || n.key == key) {
				return n.path, true
			}
		}
		return "", false
	}
	at := "line " + m[1]

	if u := unknownRE.FindStringSubmatch(rest); u != nil {
		if p, ok := find("key", u[1]); ok {
			return Problem{Path: p, Message: "unknown key (line " + m[1] + ")"}
		}
		return Problem{Path: at, Message: "unknown key " + strconv.Quote(u[1])}
	}
	if mm := mismatchRE.FindStringSubmatch(rest); mm != nil {
		kind := map[string]string{"!!map": "map", "!!seq": "seq"}[mm[1]]
		if kind == "" {
			kind = "scalar"
		}
		msg := "expected " + describeType(mm[2]) + ", got " + describeTag(mm[1]) + " (line " + m[1] + ")"
		if p, ok := find(kind, ""); ok {
			return Problem{Path: p, Message: msg}
		}
		return Problem{Path: at, Message: msg}
	}
	// Our own messages (Duration) name the value on purpose.
	if p, ok := find("scalar", ""); ok {
		return Problem{Path: p, Message: rest + " (line " + m[1] + ")"}
	}
	return Problem{Path: at, Message: rest}
}

func describeType(goType string) string {
	switch {
	case goType == "int":
		return "an integer"
	case goType == "bool":
		return "true or false"
	case goType == "string", goType == "bot.ChannelRef":
		return "a string"
	case goType == "config.Duration":
		return "a duration"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."):
		return "a mapping"
	}
	return goType
}

func describeTag(tag string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return tag
}
