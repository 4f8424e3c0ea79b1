package rsync

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/seqmirror/seqmirror/internal/transport/upstream"
)

// Kind is how rsync reaches the upstream.
type Kind int

// Address kinds.
const (
	Daemon Kind = iota + 1 // rsync://host[:port]/module[/path] or host::module[/path]
	Shell                  // host:path, over rsync's remote shell (-e, default ssh)
)

// Address is a parsed rsync upstream address.
type Address struct {
	Kind   Kind
	User   string // optional, before '@'
	Host   string // host name or IP (IPv6 without brackets)
	Port   int    // daemon port; 0 for the default
	Module string // daemon module (Daemon only)
	Path   string // slash-separated path below the module (Daemon) or on the host (Shell); "" for the module root
}

var errNotRsync = errors.New("not an rsync address")

// ParseAddress parses an rsync address. It returns an error wrapping
// errNotRsync (see IsAddress) for a plain local path, and one wrapping
// upstream.ErrBadAddress for an rsync address it refuses.
//
// Accepted forms, as rsync itself reads them:
//
//	rsync://[user@]host[:port]/module[/path]
//	[user@]host::module[/path]
//	[user@]host:path            (remote shell; a colon before any slash)
//
// Hosts may not start with '-' (they would read as rsync options) and paths
// may not contain "..", NUL, newlines or other control characters.
func ParseAddress(s string) (Address, error) {
	if rest, ok := strings.CutPrefix(s, "rsync://"); ok {
		return parseDaemonURL(s, rest)
	}
	colon := hostColon(s)
	if colon < 0 || strings.IndexByte(s[:colon], '/') >= 0 {
		return Address{}, errNotRsync
	}
	hostPart, rest := s[:colon], s[colon+1:]
	a := Address{Kind: Shell}
	if r, ok := strings.CutPrefix(rest, ":"); ok {
		a.Kind = Daemon
		mod, p, _ := strings.Cut(r, "/")
		a.Module, a.Path = mod, p
	} else {
		a.Path = rest
	}
	if err := a.setUserHost(s, hostPart); err != nil {
		return Address{}, err
	}
	return a.check(s)
}

// hostColon returns the index of the colon that ends the host part of
// [user@]host:..., skipping a bracketed IPv6 host, or -1.
func hostColon(s string) int {
	first := strings.IndexByte(s, ':')
	start := 0
	if at := strings.IndexByte(s, '@'); at >= 0 && (first < 0 || at < first) && at+1 < len(s) && s[at+1] == '[' {
		start = at + 1
	}
	if strings.HasPrefix(s[start:], "[") && strings.IndexByte(s[:start], '/') < 0 {
		end := strings.Index(s[start:], "]:")
		if end < 0 || strings.IndexByte(s[start:start+end], '/') >= 0 {
			return -1
		}
		return start + end + 1
	}
	return first
}

func parseDaemonURL(s, rest string) (Address, error) {
	a := Address{Kind: Daemon}
	authority, p, _ := strings.Cut(rest, "/")
	mod, p, _ := strings.Cut(p, "/")
	a.Module, a.Path = mod, p
	hostPort := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		a.User, hostPort = authority[:i], authority[i+1:]
	}
	host, port := hostPort, ""
	if strings.HasPrefix(hostPort, "[") {
		end := strings.IndexByte(hostPort, ']')
		if end < 0 {
			return Address{}, bad(s, "unclosed '[' in host")
		}
		host, port = hostPort[1:end], hostPort[end+1:]
		if port != "" {
			var ok bool
			if port, ok = strings.CutPrefix(port, ":"); !ok {
				return Address{}, bad(s, "junk after ']'")
			}
		}
	} else if i := strings.IndexByte(hostPort, ':'); i >= 0 {
		host, port = hostPort[:i], hostPort[i+1:]
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return Address{}, bad(s, fmt.Sprintf("port %q is not a number from 1 to 65535", port))
		}
		a.Port = n
	}
	a.Host = host
	if err := checkUserHost(s, a.User, a.Host); err != nil {
		return Address{}, err
	}
	return a.check(s)
}

func (a *Address) setUserHost(s, hostPart string) error {
	if i := strings.LastIndexByte(hostPart, '@'); i >= 0 {
		a.User, hostPart = hostPart[:i], hostPart[i+1:]
	}
	if strings.HasPrefix(hostPart, "[") && strings.HasSuffix(hostPart, "]") {
		hostPart = hostPart[1 : len(hostPart)-1]
	}
	a.Host = hostPart
	return checkUserHost(s, a.User, a.Host)
}

func checkUserHost(s, user, host string) error {
	if host == "" {
		return bad(s, "no host")
	}
	if strings.HasPrefix(host, "-") || strings.HasPrefix(user, "-") {
		return bad(s, "host or user starts with '-'")
	}
	for _, r := range user + host {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/@[]\\'\"`$;&|<>(){}*?!#~%,=", r) {
			return bad(s, fmt.Sprintf("character %q not allowed in host or user", r))
		}
	}
	return nil
}

func (a Address) check(s string) (Address, error) {
	if a.Kind == Daemon {
		if a.Module == "" {
			return Address{}, bad(s, "no module: want rsync://host/module or host::module")
		}
		if err := checkName(a.Module); err != nil {
			return Address{}, bad(s, "module "+err.Error())
		}
	}
	p := strings.TrimRight(a.Path, "/")
	if a.Kind == Daemon {
		p = strings.TrimLeft(p, "/")
	}
	if a.Kind == Shell && p == "" && strings.HasPrefix(a.Path, "/") {
		p = "/" // the remote root directory
	}
	if a.Kind == Shell && p == "" {
		return Address{}, bad(s, "no path: want host:/path/to/root")
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f {
			return Address{}, bad(s, "control character in path")
		}
	}
	if p != "" && p != "/" {
		for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			if el == ".." {
				return Address{}, bad(s, "'..' in path")
			}
		}
		abs := strings.HasPrefix(p, "/")
		p = path.Clean(p)
		if abs && !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if p == "." && a.Kind == Daemon {
			p = ""
		}
	}
	if a.Kind == Shell && (strings.HasPrefix(p, "-") || strings.HasPrefix(p, ":")) {
		p = "./" + p // never an option, nor read as host::module
	}
	a.Path = p
	return a, nil
}

func checkName(m string) error {
	for _, r := range m {
		if r <= ' ' || r == 0x7f || r == '/' || r == ':' || r == '@' {
			return fmt.Errorf("%q has a character %q rsync does not allow", m, r)
		}
	}
	if strings.HasPrefix(m, "-") || m == "." || m == ".." {
		return fmt.Errorf("%q is not a module name", m)
	}
	return nil
}

func bad(s, why string) error {
	return fmt.Errorf("%w: %q: %s", upstream.ErrBadAddress, s, why)
}

// IsAddress reports whether s is meant as an rsync address (whether or not
// it is a valid one): rsync://..., host::module or host:path.
func IsAddress(s string) bool {
	_, err := ParseAddress(s)
	return !errors.Is(err, errNotRsync)
}

// String returns the canonical form of the address, which ParseAddress
// parses back to the same Address.
func (a Address) String() string {
	var b strings.Builder
	host := a.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	user := ""
	if a.User != "" {
		user = a.User + "@"
	}
	switch a.Kind {
	case Daemon:
		b.WriteString("rsync://" + user + host)
		if a.Port != 0 {
			b.WriteString(":" + strconv.Itoa(a.Port))
		}
		b.WriteString("/" + a.Module)
		if a.Path != "" {
			b.WriteString("/" + strings.TrimPrefix(a.Path, "/"))
		}
	default:
		b.WriteString(user + host + ":" + a.Path)
	}
	return b.String()
}

// Source returns the rsync source argument for rel (slash-separated,
// relative to the upstream root; "" for the root itself).
func (a Address) Source(rel string) string {
	base := a.String()
	if a.Kind == Shell && a.Path == "/" {
		return base + rel
	}
	if rel == "" {
		return base
	}
	return base + "/" + rel
}

// FilesFromBase returns the source directory argument to use with
// --files-from, with a trailing slash, and the prefix to put before paths
// relative to the upstream root. For a daemon it is the module root (rsync
// 3.5's daemon fails every --files-from entry, as "vanished", when the
// base is a subdirectory of the module and use chroot = no), so the prefix
// is the address's path; for a remote shell it is the upstream root itself.
func (a Address) FilesFromBase() (src, prefix string) {
	if a.Kind == Daemon {
		b := a
		b.Path = ""
		if a.Path != "" {
			prefix = a.Path + "/"
		}
		return b.String() + "/", prefix
	}
	src = a.Source("")
	if !strings.HasSuffix(src, "/") {
		src += "/"
	}
	return src, ""
}
