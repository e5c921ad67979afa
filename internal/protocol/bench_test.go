package protocol

import "testing"

var inviteFrame = []byte(`{"id":12345,"op":"invite","invitee":"bob-000123","data":"{\"cmd\":\"videoCall\",\"room\":\"r-8812\"}","timeout":30,"onlineUserOnly":false,"offlinePushInfo":{"title":"Alice","desc":"is calling"}}`)

// BenchmarkDecodeInvite measures what the reader pays per invite frame:
// decoding it and fetching every parameter.
func BenchmarkDecodeInvite(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		r, err := DecodeRequest(inviteFrame)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = r.String("invitee")
		_, _ = r.String("data")
		_, _ = r.Int("timeout", 30)
		_, _ = r.Bool("onlineUserOnly", false)
		_, _ = r.PushInfo("offlinePushInfo")
	}
}

// BenchmarkEncodeEvent measures encoding one onReceiveNewInvitation, which
// is done once per event whatever the number of receivers.
func BenchmarkEncodeEvent(b *testing.B) {
	inviter, group, data, timeout := "alice-000123", "", `{"cmd":"videoCall","room":"r-8812"}`, 30
	ev := Event{Event: "onReceiveNewInvitation", InviteID: "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4", Inviter: &inviter,
		GroupID: &group, InviteeList: []string{"bob-000123"}, Data: &data, Timeout: &timeout}
	b.ReportAllocs()
	for b.Loop() {
		_ = ev.Encode()
	}
}

func BenchmarkEncodeReply(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Reply{ID: 12345, Data: "Q2ZJ7V3X4KQ5L6M7N8P9R2S3T4"}.Encode()
	}
}
