// A plain Go net/http app (standard library only) for the differential suite: which handler
// does a real app run?
//
//	go build -o target/apps/goapp ./tests/apps/goapp   (tests/apps/setup.sh does this)
//
// Routes with http.ServeMux as Go apps do: "/signup" exactly, "/checkout" and the subtree
// "/checkout/", and "/" for the rest (ServeMux cleans the path and redirects to the clean
// one). Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>` once it accepts
// connections, and exits when its stdin closes. Answers `X-Handler`, `X-Identity` and a JSON
// body with what net/http saw: handler, method, path, raw target, host (r.Host), and `read`:
// the identity, forwarding and override headers through r.Header.Get.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
)

var protected = []string{
	"x-verified-unique-in-site", "x-verified-birth", "x-verified-gender", "x-verified-age-ok",
	"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix",
	"x-forwarded-port", "x-real-ip", "forwarded", "x-host", "x-original-host",
	"x-http-method-override", "x-http-method", "x-method-override", "x-original-url",
	"x-rewrite-url",
}

func handler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Handler", name)
		var seen []string
		for k := range r.Header {
			if l := strings.ToLower(k); strings.HasPrefix(l, "x-verified-") {
				seen = append(seen, l)
			}
		}
		sort.Strings(seen)
		if len(seen) == 0 {
			w.Header().Set("X-Identity", "-")
		} else {
			w.Header().Set("X-Identity", strings.Join(seen, ","))
		}
		switch s := r.URL.Query().Get("status"); s {
		case "301", "302", "303", "307", "308":
			code := map[string]int{"301": 301, "302": 302, "303": 303, "307": 307, "308": 308}[s]
			http.Redirect(w, r, "/done", code)
			return
		}
		read := map[string]string{}
		for _, n := range protected {
			if v := r.Header.Values(n); len(v) > 0 {
				read[n] = strings.Join(v, ", ")
			}
		}
		read["go:RemoteAddr"] = r.RemoteAddr
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"handler": name,
			"method":  r.Method,
			"path":    r.URL.Path,
			"raw":     r.RequestURI,
			"host":    r.Host,
			"read":    read,
		})
	}
}

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/signup", handler("signup"))
	mux.HandleFunc("/checkout", handler("checkout"))
	mux.HandleFunc("/checkout/", handler("checkout"))
	mux.HandleFunc("/", handler("catchall"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	_ = http.Serve(ln, mux)
}
