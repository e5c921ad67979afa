package bench

import (
	"reflect"
	"testing"
)

// Captured from redis-server 7 (INFO commandstats), lines shortened.
const commandStatsBefore = "# Commandstats\r\n" +
	"cmdstat_evalsha:calls=100,usec=2500,usec_per_call=25.00,rejected_calls=0,failed_calls=1\r\n" +
	"cmdstat_info:calls=4,usec=400,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_client|setinfo:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_sismember:calls=10,usec=10,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n"

const commandStatsAfter = "# Commandstats\r\n" +
	"cmdstat_evalsha:calls=400,usec=10000,usec_per_call=25.00,rejected_calls=0,failed_calls=1\r\n" +
	"cmdstat_eval:calls=2,usec=90,usec_per_call=45.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_info:calls=6,usec=600,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_client|setinfo:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_sismember:calls=110,usec=110,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_zrangebyscore:calls=100,usec=300,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"

func TestParseCommandStats(t *testing.T) {
	got, err := ParseCommandStats(commandStatsBefore)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]CmdStat{
		"evalsha": {100, 2500}, "info": {4, 400}, "client|setinfo": {2, 3}, "sismember": {10, 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"cmdstat_get:calls\r\n", "cmdstat_get:calls=x,usec=1\r\n"} {
		if _, err := ParseCommandStats(bad); err == nil {
			t.Errorf("ParseCommandStats(%q) succeeded", bad)
		}
	}
	if m, err := ParseCommandStats(""); err != nil || len(m) != 0 {
		t.Errorf("empty INFO: %v %v", m, err)
	}
}

func TestInfoField(t *testing.T) {
	info := "# Stats\r\ntotal_connections_received:7\r\ntotal_commands_processed:12345\r\ninstantaneous_ops_per_sec:3\r\n"
	if v, ok := InfoField(info, "total_commands_processed"); !ok || v != "12345" {
		t.Fatalf("got %q %v", v, ok)
	}
	if _, ok := InfoField(info, "total_commands"); ok {
		t.Fatal("prefix of a field matched")
	}
}

func TestRedisDelta(t *testing.T) {
	b, _ := ParseCommandStats(commandStatsBefore)
	a, _ := ParseCommandStats(commandStatsAfter)
	d := RedisSnapshot{Commands: a, Total: 1000}.Sub(RedisSnapshot{Commands: b, Total: 400})
	want := map[string]CmdStat{"evalsha": {300, 7500}, "eval": {2, 90}, "sismember": {100, 100}, "zrangebyscore": {100, 300}}
	if !reflect.DeepEqual(d.Commands, want) {
		t.Fatalf("delta %v, want %v (info and unchanged commands left out)", d.Commands, want)
	}
	if d.Calls != 502 || d.Total != 600 || d.ScriptCalls() != 302 {
		t.Fatalf("calls %d total %d scripts %d", d.Calls, d.Total, d.ScriptCalls())
	}
	top := d.Top(3)
	names := []string{top[0].Name, top[1].Name, top[2].Name}
	if !reflect.DeepEqual(names, []string{"evalsha", "sismember", "zrangebyscore"}) || top[0].Calls != 300 {
		t.Fatalf("top %v", top)
	}
	if len(d.Top(100)) != 4 {
		t.Fatalf("Top(100) = %v", d.Top(100))
	}
}

func TestParseInfoCPU(t *testing.T) {
	// Captured from redis-server 7.0 (INFO cpu).
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.000000\r\n" +
		"used_cpu_user_children:9.000000\r\nused_cpu_sys_main_thread:1.200000\r\nused_cpu_user_main_thread:2.400000\r\n"
	if v, err := ParseInfoCPU(info); err != nil || v != 3.75 {
		t.Fatalf("got %v, %v; want 3.75 (the children's and the main thread's left out)", v, err)
	}
	for _, bad := range []string{"", "# CPU\r\nused_cpu_sys:1\r\n", "used_cpu_sys:1\r\nused_cpu_user:x\r\n", "used_cpu_sys:-1\r\nused_cpu_user:1\r\n"} {
		if _, err := ParseInfoCPU(bad); err == nil {
			t.Errorf("ParseInfoCPU(%q) succeeded", bad)
		}
	}
	a := RedisSnapshot{CPUSeconds: 5, HasCPU: true}
	if d := a.Sub(RedisSnapshot{CPUSeconds: 3.5, HasCPU: true}); !d.HasCPU || d.CPUSeconds != 1.5 {
		t.Errorf("delta %+v", d)
	}
	if d := a.Sub(RedisSnapshot{}); d.HasCPU {
		t.Errorf("a delta without the reading before has CPU: %+v", d)
	}
}
