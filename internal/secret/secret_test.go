package secret

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpen(t *testing.T) {
	t.Parallel()
	s, err := New(key(1))
	require.NoError(t, err)

	sealed, err := s.Seal("audit.webhook_secret", "hunter2")
	require.NoError(t, err)
	require.NotContains(t, sealed, "hunter2")
	require.True(t, IsSealed(sealed))

	again, err := s.Seal("audit.webhook_secret", "hunter2")
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "nonces must differ")

	plain, err := s.Open("audit.webhook_secret", sealed)
	require.NoError(t, err)
	require.Equal(t, "hunter2", plain)
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	s, err := New(key(1))
	require.NoError(t, err)
	other, err := New(key(2))
	require.NoError(t, err)
	sealed, err := s.Seal("a", "v")
	require.NoError(t, err)

	_, err = other.Open("a", sealed)
	require.ErrorContains(t, err, "wrong key")
	_, err = s.Open("b", sealed)
	require.ErrorContains(t, err, "wrong key", "a value sealed for one name must not open under another")
	_, err = s.Open("a", "plain")
	require.ErrorContains(t, err, "not sealed")
	_, err = s.Open("a", prefix+"!!!")
	require.ErrorContains(t, err, "corrupt")
	_, err = s.Open("a", prefix+"AAAA")
	require.ErrorContains(t, err, "too short")
	tampered := []byte(sealed)
	tampered[len(tampered)-2] ^= 1
	_, err = s.Open("a", string(tampered))
	require.Error(t, err)
}

func TestNoKey(t *testing.T) {
	t.Parallel()
	var s *Sealer
	_, err := s.Seal("a", "v")
	require.ErrorIs(t, err, ErrNoKey)
	_, err = s.Open("a", "v")
	require.ErrorIs(t, err, ErrNoKey)
	_, err = New(key(1)[:16])
	require.ErrorContains(t, err, "16 bytes")
}
