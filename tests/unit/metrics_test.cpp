// clutch::Metrics (per process) and MetricsAggregate (the master's cluster-wide view).
#include <gtest/gtest.h>

#include "clutch/metrics.hpp"
#include "master/metrics_aggregate.hpp"
#include "runtime/metrics_access.hpp"

namespace {

using clutch::GaugeMerge;
using clutch::Metrics;
using clutch::detail::MetricsAccess;
using clutch::master::MetricsAggregate;
using clutch::master::PrometheusText;

std::string render(MetricsAggregate& agg) {
  PrometheusText text;
  agg.render(text);
  return text.text();
}

void report(MetricsAggregate& agg, int pid, const std::string& slot, const Metrics& m) {
  std::string error;
  ASSERT_TRUE(agg.update(pid, "worker", slot, MetricsAccess::snapshot(m), error)) << error;
}

TEST(Metrics, SameNameAndLabelsGiveTheSameObjectInAnyLabelOrder) {
  Metrics m;
  auto& a = m.counter("jobs_total", "Jobs.", {{"a", "1"}, {"b", "2"}});
  auto& b = m.counter("jobs_total", "Jobs.", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&a, &b);
  a.inc(2);
  EXPECT_EQ(b.value(), 2);
  EXPECT_NE(&a, &m.counter("jobs_total", "Jobs.", {{"a", "other"}, {"b", "2"}}));
}

TEST(Metrics, RejectsWhatPrometheusWouldAndTheReservedPrefix) {
  Metrics m;
  EXPECT_THROW(m.counter("9lives", "x"), std::invalid_argument);
  EXPECT_THROW(m.counter("has-dash", "x"), std::invalid_argument);
  EXPECT_THROW(m.counter("clutch_mine_total", "x"), std::invalid_argument);
  EXPECT_THROW(m.counter("ok_total", "x", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(m.counter("ok_total", "x", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(m.histogram("h", "x", {}, {{"le", "1"}}), std::invalid_argument);
  EXPECT_THROW(m.histogram("h2", "x", {1, 1}), std::invalid_argument);
  EXPECT_THROW(m.gauge("g", "x", {{"slot", "1"}}, GaugeMerge::kPerProcess), std::invalid_argument);
  m.counter("twice", "x");
  EXPECT_THROW(m.gauge("twice", "x"), std::invalid_argument);
  EXPECT_THROW(m.counter("up_total", "x").inc(-1), std::invalid_argument);
  // The runtime may use its own prefix.
  EXPECT_NO_THROW(MetricsAccess::counter(m, "clutch_runtime_total", "x"));
}

TEST(Metrics, HistogramCountsEachObservationInItsBucket) {
  Metrics m;
  auto& h = m.histogram("latency_seconds", "x", {0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // on the bound: that bucket (le)
  h.observe(5);
  EXPECT_EQ(h.counts(), (std::vector<uint64_t>{2, 0, 1}));
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 5.15);
}

TEST(MetricsAggregate, CountersAndHistogramsAddUpAndStayWhenAProcessDies) {
  Metrics w0, w1;
  w0.counter("orders_total", "Orders.", {{"kind", "web"}}).inc(3);
  w1.counter("orders_total", "Orders.", {{"kind", "web"}}).inc(4);
  w0.histogram("t_seconds", "T.", {1}).observe(0.5);
  w1.histogram("t_seconds", "T.", {1}).observe(2);
  MetricsAggregate agg;
  report(agg, 100, "0", w0);
  report(agg, 101, "1", w1);
  std::string text = render(agg);
  EXPECT_NE(text.find("# TYPE orders_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("orders_total{kind=\"web\"} 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_seconds_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_seconds_count 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_seconds_sum 2.5\n"), std::string::npos) << text;

  // Worker 0 dies; its successor starts from zero. The total does not go down.
  agg.retire(100);
  Metrics successor;
  successor.counter("orders_total", "Orders.", {{"kind", "web"}}).inc(1);
  report(agg, 102, "0", successor);
  text = render(agg);
  EXPECT_NE(text.find("orders_total{kind=\"web\"} 8\n"), std::string::npos) << text;
  EXPECT_EQ(agg.process_total(101, "orders_total"), 4);
  EXPECT_EQ(agg.process_total(100, "orders_total"), 0);
}

TEST(MetricsAggregate, GaugesMergeByTheirRuleAndLeaveWithTheirProcess) {
  Metrics w0, w1;
  w0.gauge("conns", "C.").set(2);
  w1.gauge("conns", "C.").set(5);
  w0.gauge("version", "V.", {}, GaugeMerge::kMax).set(7);
  w1.gauge("version", "V.", {}, GaugeMerge::kMax).set(9);
  w0.gauge("oldest", "O.", {}, GaugeMerge::kMin).set(7);
  w1.gauge("oldest", "O.", {}, GaugeMerge::kMin).set(9);
  w0.gauge("heap", "H.", {}, GaugeMerge::kPerProcess).set(10);
  w1.gauge("heap", "H.", {}, GaugeMerge::kPerProcess).set(20);
  MetricsAggregate agg;
  report(agg, 1, "0", w0);
  report(agg, 2, "1", w1);
  std::string text = render(agg);
  EXPECT_NE(text.find("conns 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("version 9\n"), std::string::npos) << text;
  EXPECT_NE(text.find("oldest 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("heap{role=\"worker\",slot=\"0\"} 10\n"), std::string::npos) << text;
  EXPECT_NE(text.find("heap{role=\"worker\",slot=\"1\"} 20\n"), std::string::npos) << text;
  agg.retire(2);
  text = render(agg);
  EXPECT_NE(text.find("conns 2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("slot=\"1\""), std::string::npos) << text;
}

TEST(MetricsAggregate, ABadReportIsRefusedAndTheLastGoodOneKept) {
  Metrics w;
  w.counter("a_total", "A.").inc();
  MetricsAggregate agg;
  report(agg, 1, "0", w);
  std::string error;
  EXPECT_FALSE(agg.update(1, "worker", "0", "not json", error));
  EXPECT_FALSE(
      agg.update(1, "worker", "0", R"({"f":[{"n":"x","h":"","t":"weird","s":[]}]})", error));
  EXPECT_FALSE(agg.update(
      1, "worker", "0",
      R"({"f":[{"n":"h","h":"","t":"histogram","b":[1],"s":[{"l":{},"c":[1],"sum":1}]}]})", error));
  EXPECT_NE(render(agg).find("a_total 1\n"), std::string::npos);
}

TEST(MetricsAggregate, ConflictingTypesServeTheFirstAndAreReported) {
  Metrics w0, w1;
  w0.counter("thing", "T.").inc();
  w1.gauge("thing", "T.").set(5);
  MetricsAggregate agg;
  report(agg, 1, "0", w0);
  report(agg, 2, "1", w1);
  std::string text = render(agg);
  EXPECT_NE(text.find("# TYPE thing counter\nthing 1\n"), std::string::npos) << text;
  EXPECT_EQ(agg.conflicts().count("thing"), 1u);
}

TEST(PrometheusText, EscapesHelpAndLabelValues) {
  Metrics w;
  w.counter("odd_total", "Line one\nback\\slash", {{"path", "a\"b\\c\nd"}}).inc();
  MetricsAggregate agg;
  report(agg, 1, "0", w);
  std::string text = render(agg);
  EXPECT_NE(text.find("# HELP odd_total Line one\\nback\\\\slash\n"), std::string::npos) << text;
  EXPECT_NE(text.find("odd_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
}

}  // namespace

#include <arpa/inet.h>
#include <netinet/in.h>

#include "master/proc_stats.hpp"

namespace {

TEST(ProcNetTcp, FindsTheUidOfTheClientsSocket) {
  // 127.0.0.1:40000 -> 127.0.0.1:9464 owned by uid 1000; the server's side of it by uid 0.
  const char* table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
      "inode\n"
      "   0: 0100007F:24F8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
      "1 1 0000000000000000 100 0 0 10 0\n"
      "   1: 0100007F:24F8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 "
      "2 1 0000000000000000 20 4 30 10 -1\n"
      "   2: 0100007F:9C40 0100007F:24F8 01 00000000:00000000 00:00000000 00000000  1000        0 "
      "3 1 0000000000000000 20 4 30 10 -1\n";
  using clutch::master::tcp_socket_uid;
  EXPECT_EQ(tcp_socket_uid(table, "0100007F:9C40", "0100007F:24F8"), 1000);
  EXPECT_EQ(tcp_socket_uid(table, "0100007f:24f8", "0100007F:9C40"), 0);
  EXPECT_EQ(tcp_socket_uid(table, "0100007F:9C41", "0100007F:24F8"), -1);
  EXPECT_EQ(tcp_socket_uid("", "0100007F:9C40", "0100007F:24F8"), -1);
}

TEST(ProcNetTcp, WritesEndpointsAsTheKernelDoes) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  EXPECT_EQ(clutch::master::proc_net_endpoint(storage), "0100007F:1F90");
}

}  // namespace

#include "master/sticky.hpp"

namespace {

using clutch::master::sticky_pick;

TEST(Sticky, EachAddressHasAHomeSlotAndOnlyADeadSlotsAddressesMove) {
  std::vector<bool> all{true, true, true, true};
  std::vector<bool> one_dead{true, false, true, true};
  int moved = 0;
  for (uint32_t host = 1; host <= 200; ++host) {
    uint32_t address = 0x7F000000u + host;  // 127.0.0.host
    int home = sticky_pick(all, address);
    EXPECT_EQ(home, static_cast<int>(address % 4));
    int now = sticky_pick(one_dead, address);
    EXPECT_NE(now, 1);
    if (home != 1) {
      EXPECT_EQ(now, home) << "an address of a live slot moved";
    } else {
      ++moved;
    }
  }
  EXPECT_EQ(moved, 50);
  EXPECT_EQ(sticky_pick({false, false}, 0x7F000001u), -1);  // none live: the kernel's hash
}

}  // namespace
