package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
)

// Key is one configuration key that the environment can set: a scalar or
// a list of strings. tenants and soc.identities are not keys: YAML only.
type Key struct {
	Path   string // "slack.bot_token"
	Env    string // "MSSPBOT_SLACK_BOT_TOKEN"
	Secret bool
	Kind   string // "string", "bool", "int", "duration" or "list"

	index []int
}

// keys is the one table of settable keys, derived from Config's yaml tags
// so that a new field needs no second declaration.
var keys, secretFields = buildKeys()

// Keys returns every key the environment can set, in file order.
func Keys() []Key { return append([]Key(nil), keys...) }

var durationType = reflect.TypeFor[Duration]()

func buildKeys() (settable, secret []Key) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			isSecret := f.Tag.Get("secret") == "true"
			if name == "-" {
				if isSecret {
					secret = append(secret, Key{Path: prefix + f.Name, Secret: true, index: idx})
				}
				continue
			}
			path := prefix + name
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, path+".", idx)
				continue
			}
			kind := keyKind(f.Type)
			if kind == "" { // maps and lists of structs: YAML only
				continue
			}
			k := Key{
				Path:   path,
				Env:    "MSSPBOT_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_")),
				Secret: isSecret,
				Kind:   kind,
				index:  idx,
			}
			settable = append(settable, k)
			if isSecret {
				secret = append(secret, k)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return settable, secret
}

func keyKind(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.Int:
		return "int"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list"
	}
	return ""
}

// applyEnv sets every key whose MSSPBOT_* variable is non-empty. Values
// are never quoted in problems: the key may be a secret.
func applyEnv(c *Config, getenv func(string) string, ps *problems) {
	v := reflect.ValueOf(c).Elem()
	for _, k := range keys {
		s := getenv(k.Env)
		if s == "" {
			continue
		}
		f := v.FieldByIndex(k.index)
		switch k.Kind {
		case "string":
			f.SetString(strings.TrimSpace(s))
		case "bool":
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				ps.add(k.Path, k.Env+" is not a boolean (true or false)")
				continue
			}
			f.SetBool(b)
		case "int":
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				ps.add(k.Path, k.Env+" is not an integer")
				continue
			}
			f.SetInt(int64(n))
		case "duration":
			d, err := ParseDuration(s)
			if err != nil {
				ps.add(k.Path, k.Env+" is not a duration (e.g. 90s, 5m, 24h, 180d)")
				continue
			}
			f.SetInt(int64(d))
		case "list":
			items := splitList(s)
			l := reflect.MakeSlice(f.Type(), len(items), len(items))
			for i, it := range items {
				l.Index(i).SetString(it)
			}
			f.Set(l)
		}
	}
}

// splitList splits a comma-separated env value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// readSecretFiles fills each secret from its …_file twin (read, trimmed)
// and reads azure.certificate_file.
func readSecretFiles(c *Config, readFile func(string) ([]byte, error), ps *problems) {
	v := reflect.ValueOf(c).Elem()
	byPath := make(map[string]Key, len(keys))
	for _, k := range keys {
		byPath[k.Path] = k
	}
	for _, k := range keys {
		base, ok := strings.CutSuffix(k.Path, "_file")
		if !ok {
			continue
		}
		sec, ok := byPath[base]
		if !ok || !sec.Secret {
			continue
		}
		name := v.FieldByIndex(k.index).String()
		if name == "" {
			continue
		}
		target := v.FieldByIndex(sec.index)
		if target.String() != "" {
			ps.add(sec.Path, "set either "+leaf(sec.Path)+" or "+leaf(k.Path)+", not both")
			continue
		}
		data, err := readFile(name)
		if err != nil {
			ps.add(k.Path, "cannot read "+strconv.Quote(name)+": "+fileError(err))
			continue
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			ps.add(k.Path, strconv.Quote(name)+" is empty")
			continue
		}
		target.SetString(s)
	}

	if name := c.Azure.CertificateFile; name != "" {
		data, err := readFile(name)
		switch {
		case err != nil:
			ps.add("azure.certificate_file", "cannot read "+strconv.Quote(name)+": "+fileError(err))
		case !hasPEM(data, "CERTIFICATE") || !hasPEM(data, "PRIVATE KEY"):
			ps.add("azure.certificate_file", strconv.Quote(name)+" must hold a PEM CERTIFICATE and its PRIVATE KEY")
		case !hasRSAKey(data):
			ps.add("azure.certificate_file", strconv.Quote(name)+" must hold an unencrypted RSA private key (Entra client certificates are RSA)")
		default:
			c.Azure.Certificate = data
		}
	}
}

// fileError describes a read failure without the file's path twice (the
// caller names it) and never with its content.
func fileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// hasRSAKey reports whether data holds an unencrypted RSA private key, in
// PKCS#1 or PKCS#8 form, as MSAL needs.
func hasRSAKey(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
				return true
			}
		case "PRIVATE KEY":
			if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				if _, ok := k.(*rsa.PrivateKey); ok {
					return true
				}
			}
		}
	}
}

// hasPEM reports whether data holds a PEM block whose type ends with typ
// ("PRIVATE KEY" matches RSA PRIVATE KEY and PKCS#8 PRIVATE KEY).
func hasPEM(data []byte, typ string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, typ) {
			return true
		}
	}
}

func leaf(path string) string {
	i := strings.LastIndexByte(path, '.')
	return path[i+1:]
}
