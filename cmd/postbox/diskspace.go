package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"postbox/intake"
)

// diskReserve refuses new upload bytes while the volume of the data dir
// (SQLite, the blob directory) would fall below the reserve: a full disk
// would otherwise fail writes at random places, SQLite's included, and the
// reserve keeps room for the transactions that record what was stored.
type diskReserve struct {
	dir     string
	reserve int64
	free    func(dir string) (int64, error) // statfs; replaceable in tests
}

func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// check returns intake.ErrInsufficientStorage when need more bytes would
// leave less than the reserve free.
func (d diskReserve) check(need int64) error {
	free, err := d.free(d.dir)
	if err != nil {
		return err
	}
	if free-need < d.reserve {
		return fmt.Errorf("%w: %d bytes free, %d requested, %d kept in reserve", intake.ErrInsufficientStorage, free, need, d.reserve)
	}
	return nil
}

// uploadSpace is the check for the tus handler: only when uploads or the
// database use the local disk, and the reserve is not 0.
func (a *app) uploadSpace() func(int64) error {
	if a.cfg.DiskReserve <= 0 || (a.cfg.S3Endpoint != "" && a.cfg.DatabaseURL != "") {
		return nil
	}
	return diskReserve{dir: a.cfg.DataDir, reserve: a.cfg.DiskReserve, free: freeBytes}.check
}

// storageFull reports whether a write failed for lack of space: ENOSPC from
// the blob directory, or SQLite's SQLITE_FULL ("database or disk is full").
func storageFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, intake.ErrInsufficientStorage) || errors.Is(err, syscall.ENOSPC) {
		return true
	}
	// modernc.org/sqlite's *Error: the primary result code is the low byte.
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == sqliteFull {
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// sqliteFull is SQLITE_FULL, "database or disk is full".
const sqliteFull = 13
