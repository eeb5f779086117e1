package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "msspbot version: unexpected argument %q\n", args[0])
		return 2
	}
	info, ok := debug.ReadBuildInfo()
	writeVersion(stdout, info, ok)
	return 0
}

// writeVersion prints the version, the Go toolchain and, when the binary
// carries it, the module build information (what `go version -m` shows),
// which is what a bug report needs.
func writeVersion(w io.Writer, info *debug.BuildInfo, ok bool) {
	fmt.Fprintf(w, "msspbot %s\n", version)
	fmt.Fprintf(w, "go      %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if !ok || info == nil {
		fmt.Fprintln(w, "build information unavailable")
		return
	}
	fmt.Fprintf(w, "module  %s %s\n", info.Main.Path, info.Main.Version)
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "CGO_ENABLED", "GOOS", "GOARCH", "-tags":
			fmt.Fprintf(w, "build   %s=%s\n", s.Key, s.Value)
		}
	}
	for _, d := range info.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		fmt.Fprintf(w, "dep     %s %s\n", d.Path, v)
	}
}
