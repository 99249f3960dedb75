package redis

import (
	"fmt"
	"strconv"
	"strings"
)

// hashTag returns the part of key that Redis Cluster hashes: the text
// between the first "{" and the next "}", when that is not empty, or else
// the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// tagged returns the prefix of a stream's helper keys: the stream name
// itself when it already holds a hash tag, or the name wrapped in one, so
// that "orders" and "{orders}:delayed" share a slot.
func tagged(stream string) string {
	if hashTag(stream) != stream {
		return stream
	}
	return "{" + stream + "}"
}

// HelperKey returns the key of something kept beside a stream, in the
// stream's Redis Cluster slot: "{orders}:suffix" for stream "orders", and
// "{orders}.p1:suffix" for a name that already holds a hash tag.
func HelperKey(stream, suffix string) string { return tagged(stream) + ":" + suffix }

// DelayedKey is the sorted set that holds a stream's delayed events:
// "{orders}:delayed" for stream "orders".
func DelayedKey(stream string) string { return HelperKey(stream, "delayed") }

// DeadKey is the stream that holds a stream's dead letters: "{orders}:dead"
// for stream "orders".
func DeadKey(stream string) string { return HelperKey(stream, "dead") }

// validateStream refuses names that cannot share a slot with their helper
// keys: braces that do not form a non-empty hash tag.
func validateStream(stream string) error {
	if stream == "" {
		return fmt.Errorf("empty stream name")
	}
	if strings.ContainsAny(stream, "{}") && hashTag(stream) == stream {
		return fmt.Errorf("stream %q has braces but no hash tag of the form {tag}", stream)
	}
	return nil
}

// PartitionStreams returns the n streams that a stream partitioned n ways
// is spread over: "orders:0" … "orders:<n-1>". With n below 2 it returns
// the stream alone.
func PartitionStreams(stream string, n int) []string {
	if n < 2 {
		return []string{stream}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = partition(stream, i)
	}
	return out
}

func partition(stream string, i int) string { return stream + ":" + strconv.Itoa(i) }

// PositionKey is the key beside stream where subscribers of group record
// how far the group has delivered ("{orders}:group:billing:delivered"): a
// subscriber that finds the group missing at its start makes it again
// there rather than at its Start. Delete it with the group to start the
// group afresh.
func PositionKey(stream, group string) string { return HelperKey(stream, "group:"+group+":delivered") }
