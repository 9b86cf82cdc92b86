package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// keyEnv is the environment variable that holds the secret key, in hex.
const keyEnv = "PLUGINHOST_SECRET_KEY"

// keySize is the size of the key, AES-256's.
const keySize = 32

// sealedPrefix starts every value pluginhost stores sealed: the format tag
// of its AES-256-GCM sealing. The host looks for it to tell whether a
// database holds values that only the lost key opens (see
// TestMissingKeyFileWithSealedValuesIsAnError, which fails if the tag
// changes).
const sealedPrefix = "gcm1:"

// secretKey returns the key that seals encrypted settings: hex from
// PLUGINHOST_SECRET_KEY, or for SQLite a key kept in the file dsn+".key"
// beside the database. A real service takes it from its secret store.
//
// The file is made on first start, written atomically: a host never sees a
// half-written key, and of hosts that make it at the same time one wins and
// the others read its key. An empty or corrupt file is an error, and so is
// a missing file while the database holds sealed values: a new key would
// leave every one of them unreadable.
func secretKey(ctx context.Context, dsn string, db *sql.DB, logger *slog.Logger) ([]byte, error) {
	if v := os.Getenv(keyEnv); v != "" {
		key, err := hex.DecodeString(strings.TrimSpace(v))
		if err != nil || len(key) != keySize {
			return nil, fmt.Errorf("%s must be %d hex digits (%d bytes)", keyEnv, 2*keySize, keySize)
		}
		return key, nil
	}
	if isPostgres(dsn) {
		logger.Warn(keyEnv + " is not set: encrypted settings cannot be written, and those stored cannot be read")
		return nil, nil
	}
	path := dsn + ".key"
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	n, err := sealedValues(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("secret key file %s is missing; looking for encrypted settings it would have to open: %w", path, err)
	}
	if n > 0 {
		return nil, fmt.Errorf("secret key file %s is missing, but the database holds %d encrypted setting value(s) sealed with a key: "+
			"restore the file from a backup (or set %s to the key); a new key would leave them unreadable", path, n, keyEnv)
	}
	key = make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	made, err := writeKeyFile(path, key)
	if err != nil {
		return nil, fmt.Errorf("write secret key file %s: %w", path, err)
	}
	if !made {
		// Another host made it first: use its key.
		return readKeyFile(path)
	}
	logger.Info("made a secret key for encrypted settings", "file", path)
	return key, nil
}

// readKeyFile reads the key in path: 64 hex digits, surrounding white space
// ignored. A missing file is an error wrapping fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	text := strings.TrimSpace(string(data))
	if text == "" {
		return nil, fmt.Errorf("secret key file %s is empty: restore it from a backup; "+
			"delete it only if no encrypted setting was ever stored, and the host makes a new key", path)
	}
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != keySize {
		// The content is not echoed: it may be most of a key.
		return nil, fmt.Errorf("secret key file %s is corrupt: it must hold %d hex digits (%d bytes), it holds %d characters%s; restore it from a backup",
			path, 2*keySize, keySize, len(text), notHex(err))
	}
	return key, nil
}

func notHex(err error) string {
	if err != nil {
		return " that are not all hex digits"
	}
	return ""
}

// writeKeyFile writes key to path unless path exists, and reports whether
// it did. The key goes to a temporary file beside path (mode 0600), synced,
// then linked to path, which fails if another host made path meanwhile; on
// a file system without hard links it is renamed to path instead. Either
// way path appears whole or not at all.
func writeKeyFile(path string, key []byte) (made bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after a rename; after a link, the key stays at path
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	err = errors.Join(err, f.Chmod(0o600), f.Sync(), f.Close())
	if err != nil {
		return false, err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err := os.Rename(tmp, path); err != nil {
			return false, err
		}
	}
	syncDir(dir)
	return true, nil
}

// syncDir makes the new directory entry durable, where the system allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// sealedValues counts the sealed values in pluginhost's settings table of
// an SQLite database, 0 before pluginhost made it.
func sealedValues(ctx context.Context, db *sql.DB) (int, error) {
	var tables int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pluginhost_settings'`).Scan(&tables); err != nil {
		return 0, err
	}
	if tables == 0 {
		return 0, nil
	}
	var n int
	err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM pluginhost_settings WHERE substr(value, 1, ?) = ?`, len(sealedPrefix), sealedPrefix).Scan(&n)
	return n, err
}
