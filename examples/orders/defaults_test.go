package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A run with the defaults leaves no database files in the working tree.
func TestDefaultsStayOutOfTheTree(t *testing.T) {
	if dir := filepath.Dir(defaultDB()); dir != filepath.Clean(os.TempDir()) {
		t.Errorf("the default database is in %s, want the OS temporary directory %s", dir, os.TempDir())
	}
	t.Setenv("ORDERS_TEST_SET", "x")
	t.Setenv("ORDERS_TEST_EMPTY", "")
	if envOr("ORDERS_TEST_SET", "d") != "x" || envOr("ORDERS_TEST_EMPTY", "d") != "d" || envOr("ORDERS_TEST_UNSET_X", "d") != "d" {
		t.Error("envOr does not prefer a set, non-empty variable over the default")
	}
}
