package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// runErr runs the host with args and returns the error it stops with; it
// must not start.
func runErr(t *testing.T, args ...string) error {
	t.Helper()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, ready) }()
	select {
	case addr := <-ready:
		cancel()
		<-done
		t.Fatalf("the host started on %s; want an error", addr)
		return nil
	case err := <-done:
		require.Error(t, err)
		return err
	}
}

func adminPut(t *testing.T, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest("PUT", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// The first start makes the key file: mode 0600, one key, written whole.
// Hosts that make it at the same time all end up with the key in the file.
func TestSecretKeyFileIsMadeOnceAtomicallyAndPrivate(t *testing.T) {
	t.Setenv(keyEnv, "")
	dir := t.TempDir()
	dsn := filepath.Join(dir, "example.db")
	const hosts = 8
	keys := make([][]byte, hosts)
	errs := make([]error, hosts)
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() {
			db, err := openDB(dsn, 1)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			keys[i], errs[i] = secretKey(context.Background(), dsn, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
		})
	}
	wg.Wait()
	data, err := os.ReadFile(dsn + ".key")
	require.NoError(t, err)
	inFile, err := hex.DecodeString(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	require.Len(t, inFile, keySize)
	for i := range hosts {
		require.NoError(t, errs[i], "host %d", i)
		require.Equal(t, inFile, keys[i], "host %d uses another key than the file's", i)
	}
	fi, err := os.Stat(dsn + ".key")
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"example.db", "example.db.key"}, names, "no temporary file is left behind")
}

func TestEmptyOrCorruptKeyFileIsAnError(t *testing.T) {
	t.Setenv(keyEnv, "")
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	cases := []struct{ name, content, want string }{
		{"empty", "", "is empty"},
		{"blank", " \n\n", "is empty"},
		{"not hex", strings.Repeat("z", 64) + "\n", "is corrupt: it must hold 64 hex digits (32 bytes), it holds 64 characters that are not all hex digits"},
		{"short", strings.Repeat("ab", 16) + "\n", "is corrupt: it must hold 64 hex digits (32 bytes), it holds 32 characters;"},
		{"truncated", strings.Repeat("ab", 31) + "a", "is corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "example.db")
			require.NoError(t, os.WriteFile(dsn+".key", []byte(c.content), 0o600))
			err := runErr(t, "-db", dsn)
			require.ErrorContains(t, err, "secret key file "+dsn+".key "+c.want)
			if strings.TrimSpace(c.content) != "" {
				require.NotContains(t, err.Error(), strings.TrimSpace(c.content), "the key's content is not echoed")
			}
			data, err := os.ReadFile(dsn + ".key")
			require.NoError(t, err)
			require.Equal(t, c.content, string(data), "the file is left as it was")
		})
	}
}

// Losing the key file must not make the host mint a new key over sealed
// values that only the old key opens.
func TestMissingKeyFileWithSealedValuesIsAnError(t *testing.T) {
	t.Setenv(keyEnv, "")
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	dsn := filepath.Join(t.TempDir(), "example.db")
	keyFile := dsn + ".key"

	base, stop := startHost(t, io.Discard, "-db", dsn)
	require.Equal(t, http.StatusOK, adminPut(t, base+"/api/admin/settings/audit.webhook_secret", "s3cret", `{"value":"hunter2"}`))
	require.NoError(t, stop())
	saved, err := os.ReadFile(keyFile)
	require.NoError(t, err)

	require.NoError(t, os.Remove(keyFile))
	err = runErr(t, "-db", dsn)
	require.ErrorContains(t, err, "secret key file "+keyFile+" is missing, but the database holds 1 encrypted setting value(s) sealed with a key")
	require.ErrorContains(t, err, "restore the file")
	require.NoFileExists(t, keyFile, "no new key is made")

	// With the file back, the value opens again.
	require.NoError(t, os.WriteFile(keyFile, saved, 0o600))
	var logs bytes.Buffer
	base, _ = startHost(t, &logs, "-db", dsn)
	var setting map[string]any
	require.Equal(t, http.StatusOK, adminGet(t, base+"/api/admin/settings/audit.webhook_secret", "s3cret", &setting))
	require.Equal(t, "********", setting["value"])
	require.NotContains(t, logs.String(), "does not open", "the value opens with the restored key")
}

// A database without sealed values gets a new key when the file is gone.
func TestMissingKeyFileWithoutSealedValuesMakesANewKey(t *testing.T) {
	t.Setenv(keyEnv, "")
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	dsn := filepath.Join(t.TempDir(), "example.db")
	_, stop := startHost(t, io.Discard, "-db", dsn)
	require.NoError(t, stop())
	require.NoError(t, os.Remove(dsn+".key"))
	var logs bytes.Buffer
	startHost(t, &logs, "-db", dsn)
	require.Contains(t, logs.String(), `msg="made a secret key for encrypted settings" file=`+dsn+".key")
	require.FileExists(t, dsn+".key")
}

func adminGet(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	return resp.StatusCode
}
