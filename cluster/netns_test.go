package cluster_test

import (
	"os"
	"slices"
	"testing"
	"time"
)

// Bounds of cluster.md §8.3, from the disruption to the last event.
const (
	cleanupWithin = 5 * time.Second  // a node killed or partitioned: every member told
	restartWithin = 5 * time.Second  // a restarted node ready and linked
	healWithin    = 10 * time.Second // a healed partition linked again
	flowWithin    = 10 * time.Second // a check of the broadcasts
)

// partitionN3 is cluster.md §8.2's ruleset, which cuts n3 off from n1
// and n2 in the output hook, both ways, TCP and UDP, plus an exception:
// the test's clients and readiness polls (ports 7700 and 7701) pass.
// They run in one process, and the kernel gives a socket dialing
// 127.0.0.3 the source address 127.0.0.1 (the loopback route's src), so
// without the exception the partition would also cut n3's own players
// off from n3: in a real partition a node's clients stay on its side.
//
// Caveat: the nodes' outbound sockets are not bound to their node's
// address either, so they too leave from 127.0.0.1. The mesh is still
// cut both ways (n1 and n2 dial n3, and n3 answers from 127.0.0.3), but
// the TCP connections n3 opens to the others' gossip ports (memberlist's
// push/pull, its TCP fallback ping) are not: during the partition n3's
// memberlist may go on seeing n1 and n2 alive. The quick signal, link
// liveness, is what the assertions below rely on, as the design does.
const partitionN3 = `table inet covey_partition {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport { 7700, 7701 } accept
		tcp sport { 7700, 7701 } accept
		ip saddr 127.0.0.3 ip daddr { 127.0.0.1, 127.0.0.2 } drop
		ip daddr 127.0.0.3 ip saddr { 127.0.0.1, 127.0.0.2 } drop
	}
}
`

// TestNetns runs cluster.md §8.3 on real server processes: three nodes
// on 127.0.0.1-3 inside a network namespace of their own, twelve SDK
// players (four per node) in three sessions broadcasting 20 numbered
// messages a second each, and then phases that must each hold within
// their bound:
//
//  1. steady: nothing lost, per-sender order, one member list on every node;
//  2. kill -9 n2: its members leave S1 and S2 everywhere, its session S3 is
//     deleted for the others, whose slots are free again; nothing lost
//     between the survivors after the clean-up;
//  3. n2 restarted: ready and linked, its players sign in again and join;
//  4. n3 partitioned (nftables): both sides clean up, each for itself;
//  5. healed: linked again, no ghost members, the lost sessions can be
//     joined again, broadcasts flow.
//
// It needs root, ip netns and nft; it skips, saying so, without them. The
// test process runs itself again inside the namespace (see
// netns_helpers_test.go), and that child runs the scenario.
func TestNetns(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runScenario(t, os.Getenv(serverEnv))
		return
	}
	ns := namespaceOrSkip(t)
	bin := buildServer(t)
	runChild(t, ns, bin)
}

// runScenario is TestNetns inside the namespace.
func runScenario(t *testing.T, bin string) {
	start := time.Now()
	h := newHarness(bin)
	t.Cleanup(func() {
		h.close()
		for i, n := range h.nodes {
			if n.cmd != nil {
				select {
				case <-n.exited:
				default:
					h.killNode(t, i)
				}
			}
		}
		if t.Failed() {
			h.dumpLogs(t)
		}
	})
	all := []int{0, 1, 2}
	var s1, s2, s3 *testSession
	var timings []string
	timing := func(t *testing.T, what string, d time.Duration) {
		t.Helper()
		t.Logf("%s: %v", what, d.Round(time.Millisecond))
		timings = append(timings, what+" "+d.Round(time.Millisecond).String())
	}

	ok := t.Run("setup", func(t *testing.T) {
		for i := range h.nodes {
			h.startNode(t, i)
		}
		deadline := time.Now().Add(15 * time.Second) // three cold starts on two cores
		h.waitReady(t, all, deadline)
		h.waitLinked(t, deadline)
		for i, prefix := range []string{"a", "b", "c"} {
			for k := 1; k <= 4; k++ {
				h.dial(t, prefix+string(rune('0'+k)), i)
			}
		}
		s1 = h.create(t, "S1", 1, "a1", "a2", "b1", "b2", "c1", "c2") // home n1
		s2 = h.create(t, "S2", 2, "c1", "c3", "a1", "a3", "b1", "b3") // home n3
		s3 = h.create(t, "S3", 3, "b4", "a4", "c4", "c3")             // home n2, no other member there
	})
	if !ok {
		return
	}

	ok = t.Run("phase1_steady", func(t *testing.T) {
		// About 3 s of broadcasts, then every one of them delivered.
		h.checkFlow(t, 3*broadcastRate, time.Now().Add(flowWithin), s1, s2, s3)
		for _, s := range []*testSession{s1, s2, s3} {
			h.checkMembers(t, s)
		}
	})
	if !ok {
		return
	}

	var s3b *testSession
	ok = t.Run("phase2_kill_n2", func(t *testing.T) {
		exps := h.splitExpectations([]int{0, 2}, []int{1}, s1, s2, s3)
		logs := h.logCursor()
		h.relax()
		since := h.eventCursor()
		t0 := time.Now()
		h.killNode(t, 1)
		last := h.waitEvents(t, since, t0.Add(cleanupWithin), exps)
		timing(t, "kill -9 n2 -> last clean-up event at a survivor", last.Sub(t0))
		// memberlist's verdict, which ends the redials of n2 and must
		// come before n2 is restarted: a verdict about the old process
		// arriving after the new one linked would cut the new link.
		for _, i := range []int{0, 2} {
			at := h.waitLog(t, i, logs[i], t0.Add(10*time.Second), `msg="node lost"`, "peer=n2", "declared dead")
			timing(t, h.nodes[i].name+" memberlist declares n2 dead", at.Sub(t0))
		}
		for _, s := range []*testSession{s1, s2} {
			s.members = slices.DeleteFunc(s.members, func(uid string) bool { return uid[0] == 'b' })
		}
		h.settle(t, s1, s2)
		h.checkFlow(t, broadcastRate, time.Now().Add(flowWithin), s1, s2)
		h.reportLax(t, s1, s2)
		for _, uid := range []string{"a4", "c4", "c3"} {
			h.checkNotIn(t, uid, s3)
		}
		// The slots of S3's type are free: a former member creates one.
		s3b = h.create(t, "S3'", 3, "a4", "c4", "c3") // home n1
		h.checkFlow(t, broadcastRate, time.Now().Add(flowWithin), s3b)
		for _, s := range []*testSession{s1, s2, s3b} {
			h.checkMembers(t, s)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("phase3_restart_n2", func(t *testing.T) {
		t0 := time.Now()
		h.startNode(t, 1)
		h.waitReady(t, all, t0.Add(restartWithin))
		h.waitLinked(t, t0.Add(restartWithin))
		timing(t, "n2 restarted -> ready and linked", time.Since(t0))
		for k := 1; k <= 4; k++ {
			h.dial(t, "b"+string(rune('0'+k)), 1)
		}
		h.join(t, s1, "b1", "b2", "b3", "b4")
		h.join(t, s2, "b1", "b3")
		h.checkFlow(t, broadcastRate, time.Now().Add(flowWithin), s1, s2, s3b)
		for _, s := range []*testSession{s1, s2, s3b} {
			h.checkMembers(t, s)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("phase4_partition_n3", func(t *testing.T) {
		sideA := h.splitExpectations([]int{0, 1}, []int{2}, s1, s2, s3b) // n1 and n2 lose n3
		sideB := h.splitExpectations([]int{2}, []int{0, 1}, s1, s2, s3b) // n3 loses n1 and n2
		h.relax()
		since := h.eventCursor()
		t0 := time.Now()
		nft(t, partitionN3, "-f", "-")
		lastA := h.waitEvents(t, since, t0.Add(cleanupWithin), sideA)
		lastB := h.waitEvents(t, since, t0.Add(cleanupWithin), sideB)
		timing(t, "partition of n3 -> last clean-up event on the n1/n2 side", lastA.Sub(t0))
		timing(t, "partition of n3 -> last clean-up event on the n3 side", lastB.Sub(t0))
		onN3 := func(uid string) bool { return uid[0] == 'c' }
		s1.members = slices.DeleteFunc(s1.members, onN3)
		s3b.members = slices.DeleteFunc(s3b.members, onN3)
		s2.members = slices.DeleteFunc(s2.members, func(uid string) bool { return !onN3(uid) })
		h.settle(t, s1, s2, s3b)
		// Each side goes on by itself.
		h.checkFlow(t, broadcastRate, time.Now().Add(flowWithin), s1, s2, s3b)
		h.reportLax(t, s1, s2, s3b)
		for _, s := range []*testSession{s1, s2, s3b} {
			h.checkMembers(t, s)
		}
		for _, uid := range []string{"a1", "a3", "b1", "b3"} {
			h.checkNotIn(t, uid, s2)
		}
		for _, uid := range []string{"c1", "c2"} {
			h.checkNotIn(t, uid, s1)
		}
	})
	if !ok {
		return
	}

	t.Run("phase5_heal", func(t *testing.T) {
		t0 := time.Now()
		nft(t, "", "flush", "ruleset")
		h.waitReady(t, all, t0.Add(healWithin))
		h.waitLinked(t, t0.Add(healWithin))
		timing(t, "heal -> every node ready and linked", time.Since(t0))
		// No ghosts: what each side kept is what every node says now.
		for _, s := range []*testSession{s1, s2, s3b} {
			h.checkMembers(t, s)
		}
		// The users cut off from S1, S2 and S3' join them again, and
		// every member list reads the same from every node.
		h.join(t, s2, "a1", "a3", "b1", "b3")
		h.join(t, s1, "c1", "c2")
		h.join(t, s3b, "c4", "c3")
		h.checkFlow(t, broadcastRate, time.Now().Add(flowWithin), s1, s2, s3b)
		for _, s := range []*testSession{s1, s2, s3b} {
			h.checkMembers(t, s)
		}
	})
	t.Logf("timings: %v; the whole scenario took %v", timings, time.Since(start).Round(time.Millisecond))
}
