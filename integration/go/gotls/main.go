// gotls: a Go crypto/tls HTTP server and client for wirespan's end-to-end
// tests. Standard library only (no modules to download).
//
//	gotls server <addr> <cert> <key> <h1|h2>
//	gotls client <h1|h2> <base-url> <path>...
//
// The client makes its requests in order on one keep-alive connection and
// prints one line per response: "<proto> <status> <body bytes> <local port>".
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"time"
)

// One MiB, position dependent.
var big = bytes.Repeat([]byte("0123456789abcdef"), 65536)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gotls server <addr> <cert> <key> <h1|h2> | gotls client <h1|h2> <base-url> <path>...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		serve(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case "client":
		client(os.Args[2], os.Args[3], os.Args[4:])
	default:
		os.Exit(2)
	}
}

func serve(addr, cert, key, protos string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello from go\n"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ErrorLog: nil}
	if protos == "h1" {
		// A non-nil empty map turns HTTP/2 off.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	err := srv.ListenAndServeTLS(cert, key)
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func client(proto, base string, paths []string) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if proto == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	// Bounded, so that a test never waits on a stuck client.
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	for _, p := range paths {
		var local string
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			local = i.Conn.LocalAddr().String()
		}}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, err := http.NewRequestWithContext(ctx, "GET", base+p, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		resp, err := c.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_, port, _ := net.SplitHostPort(local)
		fmt.Printf("%s %d %d %s\n", resp.Proto, resp.StatusCode, n, port)
	}
}
