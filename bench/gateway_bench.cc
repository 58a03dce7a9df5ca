// gateway_bench: the REST API and the WebSocket fan-out of a real `gyre dev`,
// each figure beside its target and beside the direct gRPC reference
// measured in the same run (issue 19). Not a test: prints figures.
//
//   build/bench/gateway_bench [--seconds=10] [--subscribers=1000] [--tasks=10000]
//
// 1. GET /api/v1/executions/{id} with wrk (100 keep-alive connections, 2
//    threads), with tasks (two orchestrator calls) and ?tasks=false (one);
// 2. the same execution with the orchestrator's GetExecution over gRPC, 100
//    calls in flight (callback API), as the reference;
// 3. N WebSocket subscribers of one finished execution of T no-op tasks,
//    each from since=0: every event, in order, to every subscriber; total
//    deliveries per second and the suite's RSS;
// 4. the machine's ceiling for that fan-out, in the same run: the same
//    clients against a bare Beast WebSocket server (as many I/O threads as
//    the gateway) that writes the same messages, encoded once, and nothing
//    else: no feed, no orchestrator, no JSON.
// Each is repeated --runs times; the medians are printed with the load
// average before and after (the machine is shared).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/testing/websocket_client.h"

ABSL_FLAG(int, seconds, 10, "duration of each request-rate measurement");
ABSL_FLAG(int, subscribers, 1000, "WebSocket subscribers of the fan-out run");
ABSL_FLAG(int, tasks, 10000, "no-op tasks of the fan-out execution");
ABSL_FLAG(std::string, bin_dir, "build", "build directory with cmd/gyre/gyre");
ABSL_FLAG(int, runs, 3, "repetitions of every measurement (medians are reported)");

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using gyre::testing::ChildProcess;
using gyre::testing::HttpCall;

constexpr char kKey[] = "gyk_gateway-bench-key";

std::string Field(const std::string& json, const std::string& key) {
  const std::string marker = absl::StrCat("\"", key, "\":\"");
  const size_t at = json.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return json.substr(start, json.find('"', start) - start);
}

// Creates and runs a workflow of `tasks` no-op tasks to its end; its id.
std::string RunWorkflow(int port, const std::string& name, int tasks) {
  std::string yaml = absl::StrCat("name: ", name, "\ntasks:\n");
  for (int i = 0; i < tasks; ++i) absl::StrAppend(&yaml, "  - id: t", i, "\n    builtin: noop\n");
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"X-API-Key", kKey}, {"Content-Type", "application/yaml"}};
  auto created = HttpCall("127.0.0.1", port, "POST", "/api/v1/workflows", headers, yaml);
  if (!created.ok() || created->status != 201) return "";
  auto started =
      HttpCall("127.0.0.1", port, "POST", absl::StrCat("/api/v1/workflows/", name, "/execute"),
               {{"X-API-Key", kKey}});
  if (!started.ok()) return "";
  const std::string id = Field(started->body, "execution_id");
  for (absl::Time end = absl::Now() + absl::Minutes(5); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(200))) {
    auto got = HttpCall("127.0.0.1", port, "GET", "/api/v1/executions/" + id + "?tasks=false",
                        {{"X-API-Key", kKey}});
    if (got.ok() && absl::StrContains(got->body, "EXECUTION_SUCCEEDED")) return id;
  }
  return "";
}

struct Rate {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// wrk's "Requests/sec" and latency percentiles.
Rate Wrk(int port, const std::string& path, int seconds) {
  const std::string command =
      absl::StrCat("wrk -t2 -c100 -d", seconds, "s --latency -H 'X-API-Key: ", kKey,
                   "' http://127.0.0.1:", port, path, " 2>&1");
  Rate rate;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return rate;
  char line[512];
  auto ms = [](absl::string_view text) {
    double value = 0;
    std::string number(text);
    const double scale = absl::EndsWith(number, "us")   ? 0.001
                         : absl::EndsWith(number, "ms") ? 1
                                                        : 1000;
    number.erase(number.find_first_not_of("0123456789."));
    (void)absl::SimpleAtod(number, &value);
    return value * scale;
  };
  while (fgets(line, sizeof(line), pipe) != nullptr) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.size() >= 2 && words[0] == "Requests/sec:") {
      (void)absl::SimpleAtod(words[1], &rate.per_second);
    }
    if (words.size() >= 2 && words[0] == "50%")
      rate.p50_ms = ms(absl::StripAsciiWhitespace(words[1]));
    if (words.size() >= 2 && words[0] == "99%")
      rate.p99_ms = ms(absl::StripAsciiWhitespace(words[1]));
    if (absl::StrContains(line, "Non-2xx")) std::fprintf(stderr, "wrk: %s", line);
  }
  pclose(pipe);
  return rate;
}

// GetExecution over gRPC with `in_flight` callback calls for `seconds`.
Rate DirectGetExecution(int grpc_port, const std::string& id, int seconds, int in_flight) {
  auto stub = gyre::v1::OrchestratorService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", grpc_port), grpc::InsecureChannelCredentials()));
  absl::Mutex mu;
  std::vector<double> latencies_ms;
  std::atomic<bool> stop{false};
  std::atomic<int> running{in_flight};
  struct Call {
    grpc::ClientContext context;
    gyre::v1::GetExecutionRequest request;
    gyre::v1::Execution response;
    absl::Time start;
  };
  std::function<void()> issue = [&] {
    auto call = std::make_shared<Call>();
    call->request.set_name("executions/" + id);
    call->start = absl::Now();
    stub->async()->GetExecution(
        &call->context, &call->request, &call->response, [&, call](grpc::Status status) {
          const double ms = absl::ToDoubleMilliseconds(absl::Now() - call->start);
          if (status.ok()) {
            absl::MutexLock lock(&mu);
            latencies_ms.push_back(ms);
          }
          if (stop.load()) {
            running.fetch_sub(1);
          } else {
            issue();
          }
        });
  };
  const absl::Time begin = absl::Now();
  for (int i = 0; i < in_flight; ++i) issue();
  absl::SleepFor(absl::Seconds(seconds));
  stop.store(true);
  const absl::Duration elapsed = absl::Now() - begin;
  while (running.load() > 0) absl::SleepFor(absl::Milliseconds(10));
  absl::MutexLock lock(&mu);
  Rate rate;
  rate.per_second = latencies_ms.size() / absl::ToDoubleSeconds(elapsed);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  if (!latencies_ms.empty()) {
    rate.p50_ms = latencies_ms[latencies_ms.size() / 2];
    rate.p99_ms = latencies_ms[latencies_ms.size() * 99 / 100];
  }
  return rate;
}

// One WebSocket subscriber that checks every sequence arrives in order.
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(boost::asio::io_context& io, std::atomic<int64_t>* delivered)
      : ws_(io), delivered_(delivered) {}
  void Start(const tcp::endpoint& endpoint, const std::string& target) {
    target_ = target;
    beast::get_lowest_layer(ws_).async_connect(
        endpoint, [self = shared_from_this()](beast::error_code error) {
          if (error) return self->Fail("connect: " + error.message());
          self->ws_.set_option(websocket::stream_base::decorator(
              [](websocket::request_type& request) { request.set("X-API-Key", kKey); }));
          self->ws_.async_handshake("127.0.0.1", self->target_, [self](beast::error_code error) {
            if (error) return self->Fail("handshake: " + error.message());
            self->Read();
          });
        });
  }
  bool done() const { return done_.load(); }
  bool in_order() const { return in_order_; }
  int64_t received() const { return next_ - 1; }
  int close_code() const { return close_code_; }

 private:
  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code error, size_t) {
      if (error) {
        self->close_code_ = self->ws_.reason().code;
        self->done_.store(true);
        return;
      }
      const absl::string_view message(static_cast<const char*>(self->buffer_.cdata().data()),
                                      self->buffer_.size());
      const size_t at = message.find("\"sequence\":");
      int64_t sequence = 0;
      if (at != absl::string_view::npos) {
        const size_t start = at + 11;
        (void)absl::SimpleAtoi(message.substr(start, message.find(',', start) - start), &sequence);
      }
      if (sequence != self->next_) self->in_order_ = false;
      ++self->next_;
      self->delivered_->fetch_add(1, std::memory_order_relaxed);
      self->buffer_.consume(self->buffer_.size());
      self->Read();
    });
  }
  void Fail(const std::string& why) {
    std::fprintf(stderr, "subscriber: %s\n", why.c_str());
    in_order_ = false;
    done_.store(true);
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::string target_;
  std::atomic<int64_t>* delivered_;
  int64_t next_ = 1;
  bool in_order_ = true;
  int close_code_ = 0;
  std::atomic<bool> done_{false};
};

int64_t RssBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kb = 0;
      std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (words.size() >= 2) (void)absl::SimpleAtoi(words[1], &kb);
      return kb * 1024;
    }
  }
  return 0;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The ceiling of the fan-out on this machine: a WebSocket server that only
// writes `messages` (shared, encoded once) to each client in order, then
// closes normally, on `threads` I/O threads as the gateway has.
class CeilingServer {
 public:
  CeilingServer(std::vector<std::string> messages, int threads)
      : messages_(std::move(messages)), acceptor_(io_, tcp::endpoint(tcp::v4(), 0)) {
    acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    Accept();
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~CeilingServer() {
    io_.stop();
    for (std::thread& thread : threads_) thread.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket socket, const std::vector<std::string>* messages)
        : ws(std::move(socket)), messages(messages) {}
    void Start() {
      ws.async_accept([self = shared_from_this()](beast::error_code error) {
        if (!error) self->Write();
      });
    }
    void Write() {
      if (next == messages->size()) {
        ws.async_close(websocket::close_code::normal,
                       [self = shared_from_this()](beast::error_code) {});
        return;
      }
      ws.async_write(boost::asio::buffer((*messages)[next++]),
                     [self = shared_from_this()](beast::error_code error, size_t) {
                       if (!error) self->Write();
                     });
    }
    websocket::stream<beast::tcp_stream> ws;
    const std::vector<std::string>* messages;
    size_t next = 0;
  };
  void Accept() {
    acceptor_.async_accept(boost::asio::make_strand(io_),
                           [this](beast::error_code error, tcp::socket socket) {
                             if (error) return;
                             std::make_shared<Session>(std::move(socket), &messages_)->Start();
                             Accept();
                           });
  }
  const std::vector<std::string> messages_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

struct FanOut {
  int complete = 0;
  double per_second = 0;
  double seconds = 0;
  int64_t peak_rss = 0;
};

// `count` subscribers of `target` on `port`, each expecting `events`
// messages in order and the normal close; RSS of `pid` sampled (0: none).
// gyre_gateway_execution_streams_total on the metrics port (0 when unknown).
double ExecutionStreams(int metrics_port) {
  if (metrics_port == 0) return 0;
  auto metrics = gyre::testing::HttpGet("127.0.0.1", metrics_port, "/metrics");
  if (!metrics.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    if (absl::ConsumePrefix(&line, "gyre_gateway_execution_streams_total ")) {
      double value = 0;
      return absl::SimpleAtod(line, &value) ? value : 0;
    }
  }
  return 0;
}

FanOut RunFanOut(int port, const std::string& target, int count, int64_t events, pid_t pid) {
  boost::asio::io_context io;
  std::atomic<int64_t> delivered{0};
  std::vector<std::shared_ptr<Subscriber>> subscribers;
  const tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"),
                               static_cast<uint16_t>(port));
  const absl::Time begin = absl::Now();
  for (int i = 0; i < count; ++i) {
    subscribers.push_back(std::make_shared<Subscriber>(io, &delivered));
    subscribers.back()->Start(endpoint, target);
  }
  FanOut result;
  std::thread client([&io] { io.run(); });
  while (!std::all_of(subscribers.begin(), subscribers.end(),
                      [](const auto& s) { return s->done(); })) {
    if (pid != 0) result.peak_rss = std::max(result.peak_rss, RssBytes(pid));
    absl::SleepFor(absl::Milliseconds(100));
    if (absl::Now() - begin > absl::Minutes(10)) break;
  }
  const absl::Duration elapsed = absl::Now() - begin;
  io.stop();
  client.join();
  std::map<std::string, int> outcomes;  // why the others did not complete
  for (const auto& s : subscribers) {
    if (s->in_order() && s->received() == events && s->close_code() == 1000) {
      ++result.complete;
    } else {
      ++outcomes[absl::StrCat("close ", s->close_code(), s->in_order() ? "" : ", out of order",
                              ", received ", s->received())];
    }
  }
  for (const auto& [outcome, n] : outcomes) {
    std::printf("    %d subscribers: %s\n", n, outcome.c_str());
  }
  result.seconds = absl::ToDoubleSeconds(elapsed);
  result.per_second = delivered.load() / result.seconds;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int seconds = absl::GetFlag(FLAGS_seconds);
  const gyre::testing::ScratchDir data("gateway_bench");
  auto dev = ChildProcess::Start(
      {absl::GetFlag(FLAGS_bin_dir) + "/cmd/gyre/gyre", "dev", "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
       absl::StrCat("--dev_api_key=", kKey), "--data_dir=" + data.path()});
  if (!dev.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dev.status().message()).c_str());
    return 1;
  }
  auto http = (*dev)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"http serving\""); },
      absl::Seconds(30));
  auto up = (*dev)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"gyre dev is up\""); },
      absl::Seconds(30));
  if (!http.ok() || !up.ok()) {
    std::fprintf(stderr, "gyre dev did not start:\n%s\n", (*dev)->Output().c_str());
    return 1;
  }
  const int http_port = *gyre::testing::JsonIntField(*http, "http_port");
  const int grpc_port = *gyre::testing::JsonIntField(*up, "grpc_port");
  auto serving = (*dev)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"serving\""); },
      absl::Seconds(5));
  const int metrics_port =
      serving.ok() ? *gyre::testing::JsonIntField(*serving, "metrics_port") : 0;

  const std::string small = RunWorkflow(http_port, "bench-small", 3);
  if (small.empty()) {
    std::fprintf(stderr, "could not run the small workflow\n");
    return 1;
  }
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  std::printf("load average before: %s (1, 5, 15 min)\n", LoadAverage().c_str());
  std::printf(
      "GET /api/v1/executions/{id}, 100 keep-alive connections (wrk), vs gRPC GetExecution, 100 in "
      "flight:\n");
  std::vector<double> grpc_rate, grpc_p99, one_rate, one_p99, one_share, full_rate, full_p99;
  for (int run = 1; run <= runs; ++run) {
    const Rate direct = DirectGetExecution(grpc_port, small, seconds, 100);
    const Rate rest_one = Wrk(http_port, "/api/v1/executions/" + small + "?tasks=false", seconds);
    const Rate rest_full = Wrk(http_port, "/api/v1/executions/" + small, seconds);
    std::printf(
        "  run %d: gRPC %.0f/s p99 %.2f ms | REST ?tasks=false %.0f/s p50 %.2f ms p99 %.2f ms "
        "(%.0f%%) | REST with tasks %.0f/s p99 %.2f ms\n",
        run, direct.per_second, direct.p99_ms, rest_one.per_second, rest_one.p50_ms,
        rest_one.p99_ms, 100 * rest_one.per_second / std::max(1.0, direct.per_second),
        rest_full.per_second, rest_full.p99_ms);
    std::fflush(stdout);
    grpc_rate.push_back(direct.per_second);
    grpc_p99.push_back(direct.p99_ms);
    one_rate.push_back(rest_one.per_second);
    one_p99.push_back(rest_one.p99_ms);
    one_share.push_back(100 * rest_one.per_second / std::max(1.0, direct.per_second));
    full_rate.push_back(rest_full.per_second);
    full_p99.push_back(rest_full.p99_ms);
  }
  std::printf("  median of %d: gRPC GetExecution (reference) %9.0f req/s  p99 %6.2f ms\n", runs,
              Median(grpc_rate), Median(grpc_p99));
  std::printf(
      "  median of %d: REST ?tasks=false (1 backend call) %9.0f req/s  p99 %6.2f ms  (%.0f%% of "
      "gRPC; target >= 10,000/s, p99 < 10 ms, >= 50%%)\n",
      runs, Median(one_rate), Median(one_p99), Median(one_share));
  std::printf("  median of %d: REST with tasks (2 backend calls)  %9.0f req/s  p99 %6.2f ms\n",
              runs, Median(full_rate), Median(full_p99));
  std::fflush(stdout);

  const int tasks = absl::GetFlag(FLAGS_tasks);
  const std::string big = RunWorkflow(http_port, "bench-fanout", tasks);
  if (big.empty()) {
    std::fprintf(stderr, "could not run the fan-out workflow\n");
    return 1;
  }
  auto last = HttpCall("127.0.0.1", http_port, "GET", "/api/v1/executions/" + big + "?tasks=false",
                       {{"X-API-Key", kKey}});
  int64_t events = 0;
  (void)absl::SimpleAtoi(Field(last->body, "last_sequence"), &events);
  // The very messages the gateway sends, for the ceiling server.
  std::vector<std::string> messages;
  {
    auto reader = gyre::testing::WebSocketClient::Connect(
        "127.0.0.1", http_port, "/ws/executions/" + big, {{"X-API-Key", kKey}});
    while (reader.ok()) {
      absl::StatusOr<std::string> message = (*reader)->Read();
      if (!message.ok()) break;
      messages.push_back(*std::move(message));
    }
  }
  if (static_cast<int64_t>(messages.size()) != events) {
    std::fprintf(stderr, "one subscriber got %zu of %lld events\n", messages.size(),
                 static_cast<long long>(events));
    return 1;
  }
  const int count = absl::GetFlag(FLAGS_subscribers);
  std::printf("WebSocket fan-out: %d subscribers x %lld events (%d tasks), each from since=0:\n",
              count, static_cast<long long>(events), tasks);
  std::vector<double> gateway_rate, ceiling_rate, share, rss;
  int all_complete = 0;
  for (int run = 1; run <= runs; ++run) {
    const double streams_before = ExecutionStreams(metrics_port);
    const FanOut gateway =
        RunFanOut(http_port, "/ws/executions/" + big, count, events, (*dev)->pid());
    // How many times the gateway replayed the execution from the
    // orchestrator for these subscribers (1 when they all share one feed).
    const double streams = ExecutionStreams(metrics_port) - streams_before;
    FanOut ceiling;
    {
      CeilingServer server(messages, 2);
      ceiling = RunFanOut(server.port(), "/", count, events, 0);
    }
    std::printf(
        "  run %d: gateway %d/%d complete, %.0f deliveries/s (%.1f s), peak RSS %.0f MiB, %.0f "
        "orchestrator stream(s) | ceiling (bare Beast server, same clients) %d/%d, %.0f/s | "
        "gateway "
        "= %.0f%% of ceiling\n",
        run, gateway.complete, count, gateway.per_second, gateway.seconds,
        gateway.peak_rss / 1048576.0, streams, ceiling.complete, count, ceiling.per_second,
        100 * gateway.per_second / std::max(1.0, ceiling.per_second));
    std::fflush(stdout);
    if (gateway.complete == count) ++all_complete;
    gateway_rate.push_back(gateway.per_second);
    ceiling_rate.push_back(ceiling.per_second);
    share.push_back(100 * gateway.per_second / std::max(1.0, ceiling.per_second));
    rss.push_back(gateway.peak_rss / 1048576.0);
  }
  std::printf(
      "  median of %d: gateway %.0f deliveries/s (target >= 1,000,000/s); ceiling %.0f/s; "
      "gateway = %.0f%% of the ceiling; %d/%d runs with every subscriber complete\n"
      "  gyre dev peak RSS (gateway + orchestrator + agent; target < 512 MiB for the gateway): "
      "median %.0f MiB\n",
      runs, Median(gateway_rate), Median(ceiling_rate), Median(share), all_complete, runs,
      Median(rss));
  std::printf("load average after: %s\n", LoadAverage().c_str());
  (*dev)->Signal(SIGINT);
  (*dev)->WaitForExit(absl::Seconds(15));
  return 0;
}
