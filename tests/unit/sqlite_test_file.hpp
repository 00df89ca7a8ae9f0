// A test fixture that owns a fresh SQLite queue path in /tmp and removes it (with its WAL files).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace clutch::testing {

class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/clutch-sqlite-XXXXXX";
    close(mkstemp(name));
    path_ = name;
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
  }
  std::string path_;
};

}  // namespace clutch::testing
