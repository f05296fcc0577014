package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeCommands returns the commands of README.md's first sh block, each
// without its trailing comment.
func readmeCommands(t *testing.T, readme string) []string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && line == "```sh":
			in = true
		case in && line == "```":
			return cmds
		case in:
			cmd, _, _ := strings.Cut(line, "#")
			if cmd = strings.TrimSpace(cmd); cmd != "" {
				cmds = append(cmds, cmd)
			}
		}
	}
	t.Fatalf("%s has no sh block", readme)
	return nil
}

// TestFreshClone clones the repository's last commit into an empty folder
// with nothing beside it and runs the README's first command there: the
// narrated demo must complete, with the dataset the binary embeds. (The
// README's second command, the tests, is what CI runs on such a clone.)
func TestFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds the binary")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	if err := exec.Command("git", "-C", root, "rev-parse", "--verify", "HEAD").Run(); err != nil {
		t.Skipf("%s is not a git checkout with a commit", root)
	}
	cmds := readmeCommands(t, filepath.Join(root, "README.md"))
	if len(cmds) != 2 {
		t.Fatalf("README.md's first sh block has %d commands, want 2 (the demo, the tests): %q", len(cmds), cmds)
	}
	empty := t.TempDir()
	clone := filepath.Join(empty, "dht")
	if out, err := exec.Command("git", "clone", "--quiet", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", cmds[0])
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "TMPDIR="+empty)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a fresh clone: %v\n%s", cmds[0], err, out)
	}
	for _, want := range []string{
		"read the 241 records of the embedded StatsCountry.csv",
		"dht-complete SUCCESS",
		"query-dht SUCCESS: found at node ",
		"teardown-complete SUCCESS",
		"bbolt files removed",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s in a fresh clone: the output lacks %q:\n%s", cmds[0], want, out)
		}
	}
	left, _ := filepath.Glob(filepath.Join(empty, "*"))
	if len(left) != 1 {
		t.Errorf("the demo left files beside the clone: %v", left)
	}
}
