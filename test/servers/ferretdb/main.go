// Command ferretdb-harness is Coffer's MongoDB-wire test server: FerretDB v1 embedded as a library over
// SQLite files in --dir, behind a small wire proxy (proxy.go) that serialises commands and fixes the
// duplicate-key error code. It prints one line `READY mongodb://HOST:PORT/` on stdout once it accepts
// connections, logs to stderr, and exits when stdin reaches EOF (the parent test run died or closed it),
// on SIGINT/SIGTERM, or when the server fails. Test use only: no auth, no TLS, loopback by default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-harness: %s\n", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on (port 0 picks a free port)")
	dir := flag.String("dir", "", "directory for the SQLite database files (created if missing; required)")
	watchStdin := flag.Bool("watch-stdin", true, "exit when stdin reaches EOF (so a dead parent leaves no orphan)")
	logLevel := flag.String("log-level", "warn", "stderr log level: debug, info, warn or error")
	flag.Parse()

	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if err = os.MkdirAll(absDir, 0o700); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	// FerretDB wants a file: URI naming an existing directory, with a trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: absDir + "/"}).String()

	// Clients talk to the proxy on --listen; FerretDB itself listens on a private loopback port.
	front, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer front.Close()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *watchStdin {
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			logger.Info("stdin closed, shutting down")
			stop()
		}()
	}

	// FerretDB binds its listener inside ferretdb.New, so its address is known before Run.
	backend := strings.TrimSuffix(strings.TrimPrefix(f.MongoDBURI(), "mongodb://"), "/")
	p := &proxy{backend: backend, logger: logger}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ferretDone := make(chan error, 1)
	go func() { ferretDone <- f.Run(ctx) }()
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- p.serve(ctx, front) }()

	fmt.Printf("READY mongodb://%s/\n", front.Addr().String())

	// Whichever stops first (signal, stdin EOF, or a failure) stops the other.
	var proxyErr, ferretErr error
	select {
	case proxyErr = <-proxyDone:
		cancel()
		ferretErr = <-ferretDone
	case ferretErr = <-ferretDone:
		cancel()
		proxyErr = <-proxyDone
	}
	return errors.Join(proxyErr, ferretErr)
}
