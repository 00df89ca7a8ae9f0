#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "clutch/http.hpp"
#include "common/config_keys.hpp"
#include "common/config_loader.hpp"

namespace clutch {
namespace {

using std::chrono::milliseconds;

// Runs load_config on a command line given as words.
Config load(std::vector<std::string> words) {
  words.insert(words.begin(), "app");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  Config c;
  EXPECT_FALSE(load_config(static_cast<int>(argv.size()), argv.data(), "app", c));
  return c;
}

std::string error_of(std::vector<std::string> words) {
  try {
    load(std::move(words));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/clutch-config-XXXXXX";
    int fd = mkstemp(name);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

TEST(Config, DefaultsAreSane) {
  Config c = load({});
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.port, 7001);
  EXPECT_EQ(c.max_message_size, 64u << 20);
}

TEST(Config, FileThenEnvironmentThenFlags) {
  TempFile file("workers = 3\nport = 8000\nkill_timeout = \"2s\"\n[app]\nanything = 1\n");
  Config from_file = load({"--config", file.path});
  EXPECT_EQ(from_file.workers, 3u);
  EXPECT_EQ(from_file.port, 8000);
  EXPECT_EQ(from_file.kill_timeout, milliseconds(2000));

  setenv("CLUTCH_PORT", "9000", 1);
  setenv("CLUTCH_WORKERS", "5", 1);
  Config from_env = load({"--config", file.path});
  EXPECT_EQ(from_env.port, 9000);
  EXPECT_EQ(from_env.workers, 5u);

  Config from_flags = load({"--config", file.path, "--workers", "7", "-s", "kill_timeout=3s"});
  EXPECT_EQ(from_flags.workers, 7u);
  EXPECT_EQ(from_flags.port, 9000);
  EXPECT_EQ(from_flags.kill_timeout, milliseconds(3000));
  unsetenv("CLUTCH_PORT");
  unsetenv("CLUTCH_WORKERS");
}

TEST(Config, FileMistakesFailWithWhatToWriteInstead) {
  auto file_error = [](const std::string& text) {
    TempFile file(text);
    return error_of({"--config", file.path});
  };
  std::string e = file_error("workers = true\n");
  EXPECT_NE(e.find("bad value for workers"), std::string::npos) << e;
  EXPECT_NE(e.find("expected a number, not true"), std::string::npos) << e;
  e = file_error("workers = 2.5\n");
  EXPECT_NE(e.find("2.5 is not a whole number; write e.g. workers = 2"), std::string::npos) << e;
  e = file_error("[cluster]\nworkers = 4\n");
  EXPECT_NE(e.find("unknown table [cluster]"), std::string::npos) << e;
  EXPECT_NE(e.find("under [app]"), std::string::npos) << e;
  e = file_error("ports = 80\n");
  EXPECT_NE(e.find("unknown key 'ports'"), std::string::npos) << e;
  e = error_of({"-s", "http_duration_buckets=5ms,1ms"});
  EXPECT_NE(e.find("http_duration_buckets"), std::string::npos) << e;
  EXPECT_NE(e.find("increasing durations"), std::string::npos) << e;
  e = error_of({"--config", "/tmp"});
  EXPECT_NE(e.find("/tmp is a directory"), std::string::npos) << e;
}

// Issue 28.4: TOML has types, and a value of the wrong one started the cluster with a meaning
// the user did not write (kill_timeout = 5 was 5 ms).
TEST(Config, FileValuesOfTheWrongTypeAreRefusedNamingTheKey) {
  auto file_error = [](const std::string& text) {
    TempFile file(text);
    return error_of({"--config", file.path});
  };
  std::string e = file_error("kill_timeout = 5\n");
  EXPECT_NE(e.find("bad value for kill_timeout"), std::string::npos) << e;
  EXPECT_NE(e.find("write the unit, e.g. kill_timeout = \"5s\""), std::string::npos) << e;
  e = file_error("hang_timeout = 30\n");
  EXPECT_NE(e.find("hang_timeout = \"30s\""), std::string::npos) << e;
  e = file_error("port = \"8080\"\n");
  EXPECT_NE(e.find("expected a number, not the string \"8080\": write port = 8080"),
            std::string::npos)
      << e;
  e = file_error("workers = \"1\"\n");
  EXPECT_NE(e.find("bad value for workers"), std::string::npos) << e;
  e = file_error("reuse_port = \"yes\"\n");
  EXPECT_NE(e.find("expected true or false, not the string \"yes\""), std::string::npos) << e;
  e = file_error("sticky = 1\n");
  EXPECT_NE(e.find("bad value for sticky"), std::string::npos) << e;
  // What the types allow still works: a string duration, 0 for "off", a number of bytes.
  TempFile good(
      "kill_timeout = \"5s\"\nhang_timeout = 0\nmax_message_size = 1048576\nworkers = 2\n"
      "reuse_port = true\nmax_rss = \"512MiB\"\n");
  Config c = load({"--config", good.path});
  EXPECT_EQ(c.kill_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.hang_timeout.count(), 0);
  EXPECT_EQ(c.max_message_size, 1048576u);
  // The same slip from the environment or a flag, where every value is text: a duration without
  // its unit is refused there too.
  e = error_of({"-s", "kill_timeout=5"});
  EXPECT_NE(e.find("a bare 5 has no unit: write \"5s\" or \"5ms\""), std::string::npos) << e;
}

TEST(Config, TheAppTableIsTheApplicationsAndReachesEveryProcess) {
  TempFile file(
      "workers = 2\n[app]\ngreeting = \"hi\\nthere\"\nretries = 3\nfeature = true\n"
      "[app.db]\nhost = \"db.local\"\n");
  Config c = load({"--config", file.path});
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.app.at("greeting"), "hi\nthere");
  EXPECT_EQ(c.app.at("retries"), "3");
  EXPECT_EQ(c.app.at("feature"), "true");
  EXPECT_EQ(c.app.at("db.host"), "db.local");
  // Children get the master's copy through serialize_config.
  Config child = deserialize_config(serialize_config(c));
  EXPECT_EQ(child.app, c.app);
  EXPECT_EQ(child.workers, 2u);
}

TEST(Config, HttpKeysBecomeTheServersOptions) {
  Config c = load({"-s", "http_max_body_size=1MiB", "-s", "http_handler_timeout=off", "-s",
                   "http_read_timeout=2s", "-s", "http_write_timeout=5s", "-s",
                   "http_idle_timeout=30s", "-s", "http_max_header_size=32KiB"});
  http::ServerOptions o = http::ServerOptions::from_config(c);
  EXPECT_EQ(o.max_body_bytes, 1u << 20);
  EXPECT_EQ(o.handler_timeout, milliseconds(0));
  EXPECT_EQ(o.read_timeout, milliseconds(2000));
  EXPECT_EQ(o.write_timeout, milliseconds(5000));
  EXPECT_EQ(o.idle_timeout, milliseconds(30000));
  EXPECT_EQ(o.max_header_bytes, 32u << 10);
  EXPECT_NE(error_of({"-s", "http_read_timeout=0"}).find("http_read_timeout"), std::string::npos);
}

TEST(Config, BadValuesNameTheKeyAndTheSource) {
  {
    std::string e = error_of({"--port", "70000"});
    EXPECT_NE(e.find("port"), std::string::npos) << e;
    EXPECT_NE(e.find("70000"), std::string::npos) << e;
  }
  std::string e = error_of({"-s", "kill_timeout=soon"});
  EXPECT_NE(e.find("kill_timeout"), std::string::npos) << e;
  e = error_of({"-s", "no_such_key=1"});
  EXPECT_NE(e.find("unknown key 'no_such_key'"), std::string::npos) << e;
  setenv("CLUTCH_MAX_MESSAGE_SIZE", "huge", 1);
  e = error_of({});
  unsetenv("CLUTCH_MAX_MESSAGE_SIZE");
  EXPECT_NE(e.find("CLUTCH_MAX_MESSAGE_SIZE"), std::string::npos) << e;
  TempFile bad("workers = -2\n");
  e = error_of({"--config", bad.path});
  EXPECT_NE(e.find("workers"), std::string::npos) << e;
  TempFile broken("workers = = 2\n");
  e = error_of({"--config", broken.path});
  EXPECT_NE(e.find(broken.path), std::string::npos) << e;
  e = error_of({"--bogus-flag"});
  EXPECT_NE(e.find("bogus"), std::string::npos) << e;
  e = error_of({"-s", "restart_backoff_initial=5s", "-s", "restart_backoff_max=1s"});
  EXPECT_NE(e.find("restart_backoff_max"), std::string::npos) << e;
}

TEST(Config, RecyclingAndDrainKeysTakeTheirValuesAndNameTheKeyWhenWrong) {
  Config c =
      load({"-s", "max_requests=10000", "-s", "max_requests_jitter=500", "-s", "drain_grace=5s"});
  EXPECT_EQ(c.max_requests, 10000u);
  EXPECT_EQ(c.max_requests_jitter, 500u);
  EXPECT_EQ(c.drain_grace, std::chrono::seconds(5));
  EXPECT_EQ(load({}).drain_grace.count(), 0);  // off by default: a stop begins at once
  EXPECT_EQ(load({"-s", "drain_grace=off"}).drain_grace.count(), 0);
  for (auto [flag, key] :
       {std::pair{"max_requests=-1", "max_requests"},
        std::pair{"max_requests=many", "max_requests"},
        std::pair{"max_requests_jitter=1.5", "max_requests_jitter"},
        std::pair{"drain_grace=5", "drain_grace"}, std::pair{"drain_grace=later", "drain_grace"}}) {
    std::string e = error_of({"-s", flag});
    EXPECT_NE(e.find(key), std::string::npos) << flag << ": " << e;
  }
  EXPECT_NE(error_of({"-s", "max_requests=1000000000001"}).find("max_requests"), std::string::npos);
  std::string e = error_of({"-s", "max_requests_jitter=50"});
  EXPECT_NE(e.find("max_requests_jitter needs max_requests"), std::string::npos) << e;
}

TEST(Config, SerializedConfigReadsBackEqual) {
  Config c;
  c.workers = 4;
  c.host = "0.0.0.0";
  c.port = 1234;
  c.kill_timeout = milliseconds(1500);
  c.max_message_size = 1 << 20;
  // Keys whose 0 means off (children read the master's config back: "0ms" once failed them).
  c.hang_timeout = milliseconds(0);
  c.http_handler_timeout = milliseconds(0);
  c.max_requests = 5000;
  c.drain_grace = milliseconds(2500);
  Config back = deserialize_config(serialize_config(c));
  EXPECT_EQ(back.hang_timeout.count(), 0);
  EXPECT_EQ(back.http_handler_timeout.count(), 0);
  EXPECT_EQ(back.max_requests, 5000u);
  EXPECT_EQ(back.drain_grace, milliseconds(2500));
  EXPECT_EQ(deserialize_config(serialize_config(Config{})).drain_grace.count(), 0);
  EXPECT_EQ(back.workers, 4u);
  EXPECT_EQ(back.host, "0.0.0.0");
  EXPECT_EQ(back.port, 1234);
  EXPECT_EQ(back.kill_timeout, milliseconds(1500));
  EXPECT_EQ(back.max_message_size, 1u << 20);
}

}  // namespace
}  // namespace clutch
