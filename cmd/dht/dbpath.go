package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// dbPathProblem says what is wrong with a --db path before anything is
// opened, naming role's flag: a folder, a path in a folder that is not
// there or through a file, a symbolic link to nothing, a path that cannot
// be followed. exists says a file is there (to open); without one, the
// file is made (made says when, the folder's hint what else fits).
func dbPathProblem(role, path, made, folderHint string) (exists bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("%s: --db %s is a folder: give the path of a file (%s)%s", role, path, made, folderHint)
	case err == nil:
		return true, nil
	}
	dir := filepath.Dir(path)
	switch fi, derr := os.Stat(dir); {
	case errors.Is(derr, fs.ErrNotExist):
		return false, fmt.Errorf("%s: --db %s: there is no folder %s (the file is %s, in a folder that exists)", role, path, dir, made)
	case derr == nil && !fi.IsDir():
		return false, fmt.Errorf("%s: --db %s: %s is not a folder", role, path, dir)
	}
	if to, lerr := os.Readlink(path); lerr == nil && errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s: --db %s is a symbolic link to %s, which is not there (the file is %s: give the path of the file itself)", role, path, to, made)
	}
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s: --db %s: %w", role, path, pe.Err)
	}
	return false, nil
}
