#include "master/guarded_loop.hpp"

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace clutch::master {

int run_guarded(asio::io_context& io, const std::function<void(std::string_view, int)>& on_escape,
                int max_escapes) {
  int escapes = 0;
  while (true) {
    std::string what;
    try {
      io.run();
      return escapes;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "an exception that is not a std::exception";
    }
    ++escapes;
    spdlog::critical("master: internal error (a bug of clutch's, please report it): {}", what);
    if (escapes >= max_escapes) return escapes;
    on_escape(what, escapes);
    // The throw may have taken the loop's last unit of work with it, which stops the context;
    // what on_escape queued must still run.
    if (io.stopped()) io.restart();
  }
}

}  // namespace clutch::master
