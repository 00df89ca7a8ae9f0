// The HTTP server's figures in the process's clutch::Metrics (summed over workers by the
// master): requests by status class, request duration, open connections.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "clutch/metrics.hpp"
#include "runtime/metrics_access.hpp"

namespace clutch::http {

struct HttpFigures {
  // `bounds_us`: the duration histogram's upper bounds (config http_duration_buckets).
  HttpFigures(Metrics& m, const std::vector<uint64_t>& bounds_us) {
    using A = detail::MetricsAccess;
    const char* classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (std::size_t i = 0; i < requests.size(); ++i) {
      requests[i] = &A::counter(m, "clutch_http_requests_total",
                                "HTTP responses sent, by status class.", {{"code", classes[i]}});
    }
    std::vector<double> bounds;
    for (uint64_t us : bounds_us) bounds.push_back(static_cast<double>(us) / 1e6);
    duration = &A::histogram(m, "clutch_http_request_duration_seconds",
                             "Time from a request's headers to its response, in seconds.",
                             std::move(bounds));
    open = &A::gauge(m, "clutch_http_open_connections", "Client connections open now.");
    queue = &A::histogram(
        m, "clutch_http_queue_seconds",
        "Time a request waited before its handler started (from X-Request-Start when the proxy "
        "sends it, else from when the worker took the connection or read the request's first "
        "byte), in seconds.",
        {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    for (auto [i, reason] : {std::pair{0, "queue_time"}, std::pair{1, "in_flight"}}) {
      shed[static_cast<std::size_t>(i)] =
          &A::counter(m, "clutch_http_shed_total",
                      "Requests answered 503 at once instead of queueing (load shedding), by the "
                      "bound they met.",
                      {{"reason", reason}});
    }
  }
  // A response was sent; `started` is when its request was dispatched (none for early errors).
  void responded(int status, std::chrono::steady_clock::time_point started = {}) {
    std::size_t cls =
        status >= 100 && status < 600 ? static_cast<std::size_t>(status / 100 - 1) : 4;
    requests[cls]->inc();
    if (started != std::chrono::steady_clock::time_point{}) {
      duration->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  }

  std::array<Counter*, 5> requests{};
  Histogram* duration = nullptr;
  Gauge* open = nullptr;
  Histogram* queue = nullptr;
  std::array<Counter*, 2> shed{};  // queue_time, in_flight
  // Requests with this worker's handlers now (dispatched, not yet answered), over every
  // connection: what http_max_in_flight bounds.
  std::size_t in_flight = 0;
};

}  // namespace clutch::http
