// The master's loop with a catch: a handler that throws is reported and the loop goes on (so a
// graceful stop can run), and a stop that keeps throwing leaves the loop instead of spinning.
#include "master/guarded_loop.hpp"

#include <gtest/gtest.h>
#include <asio/post.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace clutch::master {
namespace {

TEST(GuardedLoop, AnEscapedExceptionIsReportedAndTheLoopRunsWhatComesAfter) {
  asio::io_context io;
  std::vector<std::string> reported;
  bool stop_ran = false;
  asio::post(io, [] { throw std::out_of_range("map::at"); });
  int escapes = run_guarded(io, [&](std::string_view what, int count) {
    reported.push_back(std::string(what) + " #" + std::to_string(count));
    asio::post(io, [&] { stop_ran = true; });  // as begin_stop would
  });
  EXPECT_EQ(escapes, 1);
  EXPECT_EQ(reported, std::vector<std::string>{"map::at #1"});
  EXPECT_TRUE(stop_ran);
}

TEST(GuardedLoop, AStopThatKeepsThrowingEndsTheLoopAfterTheLimit) {
  asio::io_context io;
  int handed = 0;
  asio::post(io, [] { throw std::runtime_error("first"); });
  int escapes = run_guarded(
      io,
      [&](std::string_view, int) {
        ++handed;
        asio::post(io, [] { throw std::runtime_error("again"); });
      },
      3);
  EXPECT_EQ(escapes, 3);
  EXPECT_EQ(handed, 2);  // the third is not handed on: the caller ends the hard way
}

TEST(GuardedLoop, ANonStandardExceptionIsCaughtToo) {
  asio::io_context io;
  std::string what;
  asio::post(io, [] { throw 42; });
  EXPECT_EQ(run_guarded(io, [&](std::string_view w, int) { what = w; }), 1);
  EXPECT_NE(what.find("not a std::exception"), std::string::npos);
}

TEST(GuardedLoop, ALoopThatNeverThrowsReturnsZero) {
  asio::io_context io;
  int ran = 0;
  asio::post(io, [&] { ++ran; });
  EXPECT_EQ(run_guarded(io, [](std::string_view, int) { FAIL(); }), 0);
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace clutch::master
