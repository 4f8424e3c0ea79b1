package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

var (
	// ErrKeyEncrypted means a secret key is encrypted and no password was given.
	ErrKeyEncrypted = errors.New("secret key is encrypted")
	// ErrBadKey means a key file is not a minisign key (or none was given).
	ErrBadKey = errors.New("bad key file")
)

// KDF is the scrypt cost minisign stores in an encrypted secret key
// (libsodium's opslimit and memlimit).
type KDF struct{ Ops, Mem uint64 }

// DefaultKDF is what `minisign -G` uses (libsodium's "sensitive": 1 GiB
// of memory and seconds of CPU for each use of the key).
var DefaultKDF = KDF{Ops: 33554432, Mem: 1073741824}

// Key file layout (minisign's): sig alg, kdf alg, chk alg, salt, ops, mem,
// then key ID, Ed25519 secret key and checksum, encrypted by XOR with an
// scrypt keystream when the kdf is scrypt.
const (
	algEd       = 0x6445 // "Ed"
	kdfNone     = 0x0000
	kdfScrypt   = 0x6353 // "Sc"
	chkBlake2b  = 0x3242 // "B2"
	secretSize  = 158
	sealedStart = 54
	sealedSize  = 8 + ed25519.PrivateKeySize + 32
)

// WriteKeyPair makes a new key pair and writes PREFIX.key (mode 0600,
// minisign's secret key format: encrypted with password under kdf, or,
// with an empty password, unencrypted as `minisign -G -W` writes it) and
// PREFIX.pub. It refuses to replace either file. It returns the public key.
func WriteKeyPair(prefix string, password []byte, kdf KDF) (minisign.PublicKey, error) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return pub, err
	}
	sec, err := encodeSecret(priv, password, kdf)
	if err != nil {
		return pub, err
	}
	pubText, _ := pub.MarshalText()
	if _, err := os.Lstat(prefix + ".pub"); err == nil {
		return pub, fmt.Errorf("write key pair: %s.pub exists already: %w", prefix, os.ErrExist)
	}
	if err := writeNew(prefix+".key", sec, 0o600); err != nil {
		return pub, err
	}
	if err := writeNew(prefix+".pub", append(pubText, '\n'), 0o644); err != nil {
		_ = os.Remove(prefix + ".key")
		return pub, err
	}
	return pub, nil
}

// writeNew creates name (never replacing a file) with data, flushed.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write key pair: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write key pair: %s: %w", name, err)
	}
	return nil
}

// encodeSecret writes priv in minisign's secret key format, with the
// checksum minisign checks when it loads a key (also unencrypted).
func encodeSecret(priv minisign.PrivateKey, password []byte, kdf KDF) ([]byte, error) {
	raw, err := rawSecret(priv)
	if err != nil {
		return nil, err
	}
	var b [secretSize]byte
	binary.LittleEndian.PutUint16(b[0:], algEd)
	binary.LittleEndian.PutUint16(b[4:], chkBlake2b)
	sealed := b[sealedStart:]
	binary.LittleEndian.PutUint64(sealed, priv.ID())
	copy(sealed[8:], raw)
	var msg [2 + 8 + ed25519.PrivateKeySize]byte
	binary.LittleEndian.PutUint16(msg[:], algEd)
	copy(msg[2:], sealed[:8+ed25519.PrivateKeySize])
	chk := blake2b.Sum256(msg[:])
	copy(sealed[8+ed25519.PrivateKeySize:], chk[:])
	if len(password) > 0 {
		binary.LittleEndian.PutUint16(b[2:], kdfScrypt)
		if _, err := io.ReadFull(rand.Reader, b[6:38]); err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint64(b[38:], kdf.Ops)
		binary.LittleEndian.PutUint64(b[46:], kdf.Mem)
		N, r, p := scryptParams(kdf.Ops, kdf.Mem)
		stream, err := scrypt.Key(password, b[6:38], N, r, p, sealedSize)
		if err != nil {
			return nil, fmt.Errorf("encrypt secret key: %w", err)
		}
		for i, k := range stream {
			sealed[i] ^= k
		}
	}
	comment := "untrusted comment: minisign encrypted secret key\n"
	return []byte(comment + base64.StdEncoding.EncodeToString(b[:]) + "\n"), nil
}

// rawSecret is the 64-byte Ed25519 secret key of priv.
func rawSecret(priv minisign.PrivateKey) ([]byte, error) {
	text, err := priv.MarshalText()
	if err != nil {
		return nil, err
	}
	_, enc, _ := strings.Cut(string(text), "\n")
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil || len(b) != secretSize {
		return nil, fmt.Errorf("%w: secret key encoding", ErrBadKey)
	}
	return b[sealedStart+8 : sealedStart+8+ed25519.PrivateKeySize], nil
}

// scryptParams is minisign's (libsodium's) mapping of opslimit and
// memlimit to scrypt's N, r and p (as aead.dev/minisign decrypts).
func scryptParams(ops, mem uint64) (N, r, p int) {
	const minOps, maxRP = 1 << 15, 0x3fffffff
	ops = max(ops, minOps)
	r, p = 8, 1
	if ops < mem/32 {
		for n := 1; n < 63; n++ {
			if N = 1 << n; uint64(N) > ops/(8*uint64(r)) {
				break
			}
		}
		return N, r, p
	}
	for n := 1; n < 63; n++ {
		if N = 1 << n; uint64(N) > mem/(256*uint64(r)) {
			break
		}
	}
	if rp := (ops / 4) / uint64(N); rp < maxRP {
		p = int(rp) / r
	} else {
		p = maxRP / r
	}
	return N, r, p
}

// ReadPassword reads a password file: its bytes less one trailing newline
// (nothing prompts: publish runs from cron and hooks). An empty password
// is refused.
func ReadPassword(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	return b, nil
}

// LoadSigner reads a secret key file, decrypting it with password if it
// is encrypted (ErrKeyEncrypted if password is empty).
func LoadSigner(path string, password []byte) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	var k minisign.PrivateKey
	switch b = bytes.TrimSpace(b); {
	case minisign.IsEncrypted(b) && len(password) == 0:
		return nil, fmt.Errorf("%s: %w", path, ErrKeyEncrypted)
	case minisign.IsEncrypted(b):
		if k, err = minisign.DecryptKey(string(password), b); err != nil {
			return nil, fmt.Errorf("secret key %s: wrong password, or not a minisign key: %w", path, err)
		}
	default:
		if err := k.UnmarshalText(b); err != nil {
			return nil, fmt.Errorf("%w: secret key %s: %w", ErrBadKey, path, err)
		}
	}
	raw, err := rawSecret(k)
	if err != nil {
		return nil, err
	}
	return &Signer{id: k.ID(), key: ed25519.PrivateKey(raw)}, nil
}

// KeyID is a key ID as minisign prints it (upper-case hex).
func KeyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }
