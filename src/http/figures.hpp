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
};

}  // namespace clutch::http
