package main

import (
	"context"
	"fmt"
	"io"
)

// runServe is a placeholder until serve.go lands; the lead deletes this file.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "msspbot serve: not available in this build yet")
	return 1
}
