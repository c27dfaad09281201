package storage

import "context"

// Realtime wakes the clients watching a topic after a write. It carries no
// data: events live in SQL as an ordered log, and a woken client (or the
// home holding its stream) reads the log from its last sequence number. A
// lost wake-up therefore costs latency, never an event; callers log a
// failed Publish and go on.
//
// Topics are opaque ASCII strings (see ValidTopic); the application uses
// "t/<tenant>/c/<conversation>" and "t/<tenant>/inbox".
type Realtime interface {
	Publish(ctx context.Context, topic string) error
}

// MaxTopic bounds a topic's length.
const MaxTopic = 200

// ValidTopic reports whether t is a topic every home can carry: 1 to
// MaxTopic bytes of [A-Za-z0-9/_:.-].
func ValidTopic(t string) bool {
	if len(t) == 0 || len(t) > MaxTopic {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '/' || c == '_' || c == ':' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Headers of the stream hand-off between the application and its home
// (docs/realtime.md). A stream route answers with the events so far and
// these headers; the home strips them, keeps the connection, and on each
// wake-up of the topic re-runs the same request with StreamPollHeader set
// and Last-Event-ID at the cursor. A home removes any of them that a
// client sends.
const (
	StreamHeaderPrefix = "Pommy-Stream-"
	StreamTopicHeader  = "Pommy-Stream-Topic"
	StreamCursorHeader = "Pommy-Stream-Cursor"
	StreamModeHeader   = "Pommy-Stream-Mode" // "sse" or "longpoll"
	StreamWaitHeader   = "Pommy-Stream-Wait" // long-poll: seconds the home may wait
	StreamMoreHeader   = "Pommy-Stream-More" // "1": more events remain; poll again at once
	StreamPollHeader   = "Pommy-Stream-Poll" // set by the home on its re-polls

	StreamModeSSE      = "sse"
	StreamModeLongPoll = "longpoll"
)
