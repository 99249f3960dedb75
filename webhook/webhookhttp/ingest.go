package webhookhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// incoming is one event in a POST /v1/events body.
type incoming struct {
	Name          string          `json:"name"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	DryRun        bool            `json:"dry_run,omitempty"`
}

// Accepted is the answer of POST /v1/events.
type Accepted struct {
	// IDs are the ids of the posted events, in order, duplicates
	// included.
	IDs []pubsub.ID `json:"ids"`
	// Duplicates are the ids that were not emitted because an event with
	// the same id was accepted within the dedupe window (or earlier in
	// the same request).
	Duplicates []pubsub.ID `json:"duplicates"`
}

func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) {
	if h.cfg.JWTSecret != "" {
		if err := checkJWT(r, h.cfg.JWTSecret, h.cfg.AllowTokensWithoutExpiry); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhook-bridge"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
	}
	body, status, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	evs, given, status, err := h.parseEvents(r, body)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	emit, dups, claimed, status, err := h.dedupe(r, evs, given)
	if err != nil {
		if status == http.StatusConflict {
			// Another request is emitting one of these ids; it is done
			// within EmitTimeout, and usually at once.
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, status, err.Error())
		return
	}
	if len(emit) > 0 {
		// The emit outlives a client that hangs up (its outcome is then
		// still remembered), and ends well inside the claims' lifetime,
		// so that no other request can claim these ids meanwhile.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.EmitTimeout)
		err := h.cfg.Publisher.Emit(ctx, emit...)
		cancel()
		if err != nil {
			// What was written (some partitions of a partitioned stream) is
			// remembered, so posting the batch again emits only the rest.
			if pe := (*webhook.PartialEmitError)(nil); errors.As(err, &pe) {
				written, unwritten := claimed.split(pe.Written)
				if err := h.commit(r, written); err != nil {
					h.cfg.Logger.Error("webhookhttp: events published but not remembered for deduplication; posting them again may emit them twice", "err", err, "count", len(written.ids))
				}
				claimed = unwritten
			}
			h.release(r, claimed)
			h.cfg.Logger.Error("webhookhttp: publishing posted events", "err", err, "count", len(emit))
			writeError(w, http.StatusServiceUnavailable, "events not published: "+err.Error())
			return
		}
		if err := h.commit(r, claimed); err != nil {
			h.cfg.Logger.Error("webhookhttp: events published but not remembered for deduplication; posting them again may emit them twice", "err", err, "count", len(claimed.ids))
		}
	}
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.received.Add(float64(len(emit)))
		h.cfg.Metrics.duplicates.Add(float64(len(dups)))
	}
	out := Accepted{IDs: make([]pubsub.ID, len(evs)), Duplicates: dups}
	for i, ev := range evs {
		out.IDs[i] = ev.ID
	}
	if out.Duplicates == nil {
		out.Duplicates = []pubsub.ID{}
	}
	status = http.StatusAccepted
	if len(emit) == 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

// readBody reads a request body of at most limit bytes: 413 above it, 400
// when it is empty or cannot be read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, http.StatusBadRequest, errEmptyBody
	}
	return body, 0, nil
}

// errEmptyBody is readBody's error for a body of nothing but white space.
var errEmptyBody = errors.New("body is empty: want a JSON object")

// parseEvents reads one event object or an array of them and checks each;
// given[i] tells whether event i came with its own id.
func (h *Handler) parseEvents(r *http.Request, body []byte) ([]pubsub.Event, []bool, int, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var in []incoming
	if trimmed[0] == '[' {
		if err := strictJSON(body, &in); err != nil {
			return nil, nil, http.StatusBadRequest, fmt.Errorf("body: %v", err)
		}
	} else {
		var one incoming
		if err := strictJSON(body, &one); err != nil {
			return nil, nil, http.StatusBadRequest, fmt.Errorf("body: %v", err)
		}
		in = []incoming{one}
	}
	// The decoder reads "Name" as "name" and keeps the last of two; the
	// door takes each field spelt as documented, once.
	if err := checkKeys(body); err != nil {
		return nil, nil, http.StatusBadRequest, fmt.Errorf("body: %v", err)
	}
	switch {
	case len(in) == 0:
		return nil, nil, http.StatusBadRequest, errors.New("body: no events")
	case len(in) > h.cfg.MaxBatch:
		return nil, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body: %d events, at most %d per request", len(in), h.cfg.MaxBatch)
	}
	evs := make([]pubsub.Event, len(in))
	given := make([]bool, len(in))
	for i, e := range in {
		where := ""
		if trimmed[0] == '[' {
			where = fmt.Sprintf("events[%d].", i)
		}
		if err := checkIncoming(e); err != nil {
			return nil, nil, http.StatusBadRequest, fmt.Errorf("%s%v", where, err)
		}
		ctx := r.Context()
		switch {
		case e.CorrelationID != "":
			ctx = pubsub.WithCorrelationID(ctx, e.CorrelationID)
		case e.ID != "":
			ctx = pubsub.WithCorrelationID(ctx, e.ID) // as NewEvent does with the id it makes
		}
		ev := pubsub.NewEvent(pubsub.WithDryRun(ctx, e.DryRun), pubsub.Name(e.Name), []byte(e.Payload))
		if e.ID != "" {
			ev.ID, given[i] = pubsub.ID(e.ID), true
		}
		if err := webhook.CheckDeliverable(ev); err != nil { // a guard: checkIncoming covers it
			return nil, nil, http.StatusBadRequest, fmt.Errorf("%s%v", where, err)
		}
		evs[i] = ev
	}
	// Invalid UTF-8 in a text field became U+FFFD, refused above with the
	// field's name; anywhere else (a payload) it is refused here.
	if !utf8.Valid(body) {
		return nil, nil, http.StatusBadRequest, fmt.Errorf("body: byte %d is not valid UTF-8, which JSON must be", invalidAt(body))
	}
	return evs, given, 0, nil
}

// checkIncoming refuses what could not become a valid delivery, naming
// the field.
func checkIncoming(e incoming) error {
	switch {
	case e.Name == "":
		return errors.New("name is required")
	case webhook.IsBridgeEvent(pubsub.Name(e.Name)):
		return fmt.Errorf("name %q is reserved", e.Name)
	case len(e.Payload) == 0:
		return errors.New(`payload is required: any JSON value ("payload": null for none)`)
	}
	if e.ID != "" {
		if err := webhook.CheckEventID(e.ID); err != nil {
			return fmt.Errorf("id %q: %v", shown(e.ID), err)
		}
	}
	if err := checkText(e.Name, webhook.MaxNameLen); err != nil {
		return fmt.Errorf("name %q: %v", shown(e.Name), err)
	}
	if err := checkText(e.CorrelationID, webhook.MaxCorrelationIDLen); err != nil {
		return fmt.Errorf("correlation_id %q: %v", shown(e.CorrelationID), err)
	}
	return nil
}

// checkText refuses control characters, invalid UTF-8 and more than max
// bytes.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d", len(s), max)
	}
	for i, c := range s {
		if c == utf8.RuneError {
			// Also U+FFFD itself, which is what a JSON decoder makes of
			// a lone surrogate escape such as \ud800.
			return fmt.Errorf("byte %d is not valid UTF-8 (or U+FFFD, which stands for text that was not, or a lone surrogate)", i)
		}
		if unicode.IsControl(c) {
			return fmt.Errorf("byte %d is the control character %U, which no HTTP header may carry", i, c)
		}
	}
	return nil
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing
// data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// readAdminJSON reads an admin request's body into v with strictJSON, or
// answers the error (413 over adminBodyLimit, 400 otherwise) and returns
// false.
func readAdminJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, status, err := readBody(w, r, adminBodyLimit)
	if err == nil {
		if err = strictJSON(body, v); err != nil {
			status, err = http.StatusBadRequest, fmt.Errorf("body: %v", err)
		}
	}
	if err != nil {
		writeError(w, status, err.Error())
		return false
	}
	return true
}

// eventKeys are the fields of a posted event, spelt exactly.
var eventKeys = map[string]bool{"name": true, "payload": true, "id": true, "correlation_id": true, "dry_run": true}

// checkKeys walks the posted JSON (an object or an array of objects) and
// refuses keys that are not spelt exactly as documented, or given twice:
// Go's decoder would take "Name" for "name", and the last of two.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	object := func(where string) error {
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			switch {
			case !eventKeys[key]:
				return fmt.Errorf("%sunknown field %q", where, key)
			case seen[key]:
				return fmt.Errorf("%sfield %q given twice", where, key)
			}
			seen[key] = true
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
		_, err := dec.Token() // }
		return err
	}
	switch tok {
	case json.Delim('{'):
		return object("")
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			if t != json.Delim('{') {
				return nil // not an object: the decoder says what is wrong
			}
			if err := object(fmt.Sprintf("events[%d]: ", i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// invalidAt returns the offset of the first byte of b that is not valid
// UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
