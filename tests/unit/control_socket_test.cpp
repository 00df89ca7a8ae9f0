// Two clusters of one app share the default control socket name. One that stops must remove only
// its own socket file: if another cluster bound the name meanwhile, that file stays, so
// clutchctl keeps reaching the cluster that printed the path (and never a third one).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <string>

#include "master/control_server.hpp"

namespace clutch::master {
namespace {

TEST(ControlSocket, StoppingRemovesOnlyItsOwnFileNotOneAnotherClusterBoundSince) {
  std::string path = "/tmp/clutch-control-test-" + std::to_string(getpid()) + ".sock";
  asio::io_context io;
  auto ignore = [](const nlohmann::json&, ControlServer::Answer) {};
  ControlServer first(io, ignore), second(io, ignore);
  std::string error;
  ASSERT_TRUE(first.open(path, error)) << error;
  EXPECT_FALSE(second.open(path, error)) << "the name is in use";

  // The name freed behind the first server's back (as when it had stopped listening), and taken
  // by the second cluster.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_TRUE(second.open(path, error)) << error;
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);

  first.close();
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0) << "the first cluster removed the second's socket";
  EXPECT_EQ(after.st_ino, before.st_ino);

  second.close();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "a cluster's own socket is removed when it stops";
}

}  // namespace
}  // namespace clutch::master
