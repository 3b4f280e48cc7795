// proxy.go: the wire proxy in front of the embedded FerretDB. It makes three fixes that Coffer's metadata
// contract depends on, both measured against FerretDB v1.24 over SQLite (see docs/test-servers.md):
//
//  1. One command at a time. FerretDB v1 runs an update as read → change in Go → write, without a
//     transaction, so concurrent findOneAndUpdate/updateOne on one document lose updates and a
//     compare-and-set filter can match for several writers at once. Real MongoDB makes every
//     single-document write atomic; serialising whole request→reply exchanges across all connections
//     restores that (each command then runs alone, which is slow but faithful enough for tests).
//  2. Unacknowledged writes. FerretDB replies even to a request flagged moreToCome (w:0); the proxy
//     drops that reply so the client's next reply is its own.
//  3. Duplicate keys on update. An update that breaks a unique index comes back as code 1
//     (InternalError, "UNIQUE constraint failed"); MongoDB says code 11000 (DuplicateKey). The proxy
//     rewrites exactly that reply so callers can test `code === 11000` on every write path.
//
// Messages are framed and decoded with FerretDB's own wire package, not by hand.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/FerretDB/wire"
	"github.com/FerretDB/wire/wirebson"
)

type proxy struct {
	backend string // FerretDB's own listener (loopback, random port)
	logger  *slog.Logger
	mu      sync.Mutex // held for one request→reply exchange: one command at a time, server-wide
}

// serve accepts client connections on l until ctx is done, then closes everything and returns.
func (p *proxy) serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()

	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.handle(ctx, conn)
		}()
	}
}

// handle relays one client connection over its own backend connection.
func (p *proxy) handle(ctx context.Context, client net.Conn) {
	defer client.Close()

	backend, err := net.Dial("tcp", p.backend)
	if err != nil {
		p.logger.Error("dial backend", "error", err)
		return
	}
	defer backend.Close()

	stop := context.AfterFunc(ctx, func() { _ = client.Close(); _ = backend.Close() })
	defer stop()

	cr, cw := bufio.NewReader(client), bufio.NewWriter(client)
	br, bw := bufio.NewReader(backend), bufio.NewWriter(backend)

	for {
		header, body, err := wire.ReadMessage(cr)
		if err != nil {
			if !errors.Is(err, wire.ErrZeroRead) && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				p.logger.Debug("read from client", "error", err)
			}
			return
		}

		replies, err := p.exchange(header, body, br, bw)
		if err != nil {
			p.logger.Warn("exchange with backend", "error", err)
			return
		}

		for _, r := range replies {
			if err = wire.WriteMessage(cw, r.header, r.body); err != nil {
				p.logger.Warn("write to client", "error", err)
				return
			}
		}
		if err = cw.Flush(); err != nil {
			return
		}
	}
}

type message struct {
	header *wire.MsgHeader
	body   wire.MsgBody
}

// exchange sends one request to the backend and reads its replies while holding the server-wide lock.
func (p *proxy) exchange(header *wire.MsgHeader, body wire.MsgBody, br *bufio.Reader, bw *bufio.Writer) ([]message, error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	if err := wire.WriteMessage(bw, header, body); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}

	// A request with moreToCome (an unacknowledged w:0 write) expects no reply, but FerretDB v1 ignores
	// the flag and replies anyway: read that reply and drop it, or every later reply would be off by one.
	if msg, ok := body.(*wire.OpMsg); ok && msg.Flags.FlagSet(wire.OpMsgMoreToCome) {
		if _, _, err := wire.ReadMessage(br); err != nil {
			return nil, err
		}
		return nil, nil
	}

	var replies []message
	for {
		rh, rb, err := wire.ReadMessage(br)
		if err != nil {
			return nil, err
		}
		if rh, rb, err = fixDuplicateKey(rh, rb); err != nil {
			return nil, err
		}
		replies = append(replies, message{rh, rb})

		// An exhaust reply (moreToCome) is followed by more replies to the same request.
		if msg, ok := rb.(*wire.OpMsg); !ok || !msg.Flags.FlagSet(wire.OpMsgMoreToCome) {
			return replies, nil
		}
	}
}

// fixDuplicateKey turns FerretDB's InternalError for a unique-index violation into MongoDB's DuplicateKey.
func fixDuplicateKey(header *wire.MsgHeader, body wire.MsgBody) (*wire.MsgHeader, wire.MsgBody, error) {
	msg, ok := body.(*wire.OpMsg)
	if !ok {
		return header, body, nil
	}

	doc, err := msg.RawSection0().Decode()
	if err != nil {
		return nil, nil, fmt.Errorf("decode reply: %w", err)
	}

	code, _ := doc.Get("code").(int32)
	errmsg, _ := doc.Get("errmsg").(string)
	if code != 1 || !strings.Contains(errmsg, "UNIQUE constraint failed") {
		return header, body, nil
	}

	fixed := wirebson.MakeDocument(doc.Len())
	for i := range doc.Len() {
		name, value := doc.GetByIndex(i)
		switch name {
		case "code":
			value = int32(11000)
		case "codeName":
			value = "DuplicateKey"
		case "errmsg":
			value = "E11000 duplicate key error (test harness: " + errmsg + ")"
		}
		if err = fixed.Add(name, value); err != nil {
			return nil, nil, fmt.Errorf("rewrite reply: %w", err)
		}
	}

	out, err := wire.NewOpMsg(fixed)
	if err != nil {
		return nil, nil, fmt.Errorf("rewrite reply: %w", err)
	}
	out.Flags = msg.Flags &^ wire.OpMsgFlags(wire.OpMsgChecksumPresent)

	b, err := out.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("rewrite reply: %w", err)
	}

	return &wire.MsgHeader{
		MessageLength: int32(len(b) + wire.MsgHeaderLen),
		RequestID:     header.RequestID,
		ResponseTo:    header.ResponseTo,
		OpCode:        wire.OpCodeMsg,
	}, out, nil
}
