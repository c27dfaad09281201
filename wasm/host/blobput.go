package host

import (
	"errors"
	"io"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/wasm/abi"
)

// A blob put streams the guest's chunks into the adapter's Put, which runs
// in its own goroutine reading from a pipe. Closing the pipe commits,
// closing it with an error aborts, which the port's all-or-nothing contract
// turns into "nothing written".
//
// Writes are queued rather than written into the pipe while the guest
// waits: a feeder goroutine moves them into the pipe, so the guest reads
// its next chunk (of the request body, say) while the host seals and stores
// the last. On two cores that overlap is what brings an upload near native
// speed (docs/decisions.md). The queue holds at most putQueue chunks (each
// at most abi.MaxMessage, in practice the guest's 256 KiB), and an error of
// the Put reaches the guest at its next write or at commit.
type putHandle struct {
	pw     *io.PipeWriter
	queue  chan []byte   // chunks written by the guest, not yet in the pipe
	failed chan struct{} // closed when the feeder meets an error (err)
	err    error         // the feeder's error; read after failed or fed
	fed    chan struct{} // closed when the feeder has stopped
	ended  bool          // queue closed (commit or abort)
	done   chan putResult
}

type putResult struct {
	info storage.BlobInfo
	err  error
}

const putQueue = 2

var (
	errAborted  = errors.New("host: blob put aborted")
	errPutEnded = errors.New("host: blob put already ended")
)

// putOpen starts a put. With seal set, the guest writes plaintext and the
// adapter reads it sealed (envelope.SealStream), natively.
func (inv *invocation) putOpen(b storage.Blobs, key string, size int64, contentType string, seal *envelope.StreamParams) (abi.Message, error) {
	pr, pw := io.Pipe()
	var src io.Reader = pr
	if seal != nil {
		var err error
		if src, err = envelope.SealStream(*seal, pr); err != nil {
			return nil, err
		}
	}
	ph := &putHandle{pw: pw, queue: make(chan []byte, putQueue), failed: make(chan struct{}),
		fed: make(chan struct{}), done: make(chan putResult, 1)}
	id, err := inv.add(ph)
	if err != nil {
		return nil, err
	}
	ctx := inv.ctx
	go func() {
		info, err := b.Put(ctx, key, src, size, storage.BlobPutOptions{ContentType: contentType})
		// Fail any further write rather than block it.
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errPutEnded)
		}
		ph.done <- putResult{info, err}
	}()
	go ph.feed()
	return &abi.HandleResp{Handle: id}, nil
}

// feed moves queued chunks into the pipe until the queue is closed. After
// an error it drains the queue so that writers never block.
func (p *putHandle) feed() {
	defer close(p.fed)
	for b := range p.queue {
		if p.err != nil {
			continue
		}
		if _, err := p.pw.Write(b); err != nil {
			p.err = err
			close(p.failed)
		}
	}
}

// write queues b, which the caller hands over (the decoder's copy).
func (p *putHandle) write(b []byte) error {
	if p.ended {
		return errPutEnded
	}
	select {
	case <-p.failed:
		return p.err
	case p.queue <- b:
		return nil
	}
}

// commit ends the put once everything queued is in the pipe.
func (p *putHandle) commit() putResult {
	p.end()
	<-p.fed
	if p.err == nil {
		p.pw.Close()
		return <-p.done
	}
	// The Put ended before taking everything: its own error says why, and
	// if it had none (it stopped reading early), the put still failed.
	res := <-p.done
	if res.err == nil {
		res.err = p.err
	}
	return res
}

// abort ends the put without committing; the previous object (or none)
// stays. It returns the Put's error.
func (p *putHandle) abort() error {
	p.pw.CloseWithError(errAborted) // unblocks a feeder inside Write
	p.end()
	<-p.fed
	return (<-p.done).err
}

func (p *putHandle) end() {
	if !p.ended {
		p.ended = true
		close(p.queue)
	}
}
