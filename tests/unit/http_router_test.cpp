#include <gtest/gtest.h>

#include "clutch/http.hpp"
#include "http/response_writer.hpp"

namespace clutch::http {
namespace {

Router sample() {
  Router r;
  r.get("/", [](Exchange) {});
  r.get("/orders/:id", [](Exchange) {});
  r.post("/orders", [](Exchange) {});
  r.put("/orders/:id", [](Exchange) {});
  r.get("/orders/:id/items/:item", [](Exchange) {});
  return r;
}

TEST(HttpRouter, MatchesPathsAndCapturesParameters) {
  Router r = sample();
  auto m = r.match("GET", "/orders/42/items/7");
  ASSERT_EQ(m.status, 200);
  ASSERT_EQ(m.params.size(), 2u);
  EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>{"id", "42"}));
  EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>{"item", "7"}));
  EXPECT_EQ(r.match("GET", "/").status, 200);
  EXPECT_EQ(r.match("GET", "/orders/42/").status, 200);  // trailing slash is the same path
}

TEST(HttpRouter, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Router r = sample();
  EXPECT_EQ(r.match("GET", "/nope").status, 404);
  EXPECT_EQ(r.match("GET", "/orders/1/items").status, 404);
  auto m = r.match("DELETE", "/orders/1");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.allow, "GET, PUT");
}

TEST(HttpRouter, HeadUsesTheGetRoute) {
  EXPECT_EQ(sample().match("HEAD", "/orders/1").status, 200);
}

TEST(HttpResponse, FramingHeadersBelongToTheServer) {
  Response r;
  r.status = 201;
  r.body = "abc";
  r.set_header("Content-Length", "999");
  r.set_header("X-Id", "1");
  std::string out;
  write_response(out, r, false, true, "Thu, 01 Jan 2026 00:00:00 GMT");
  EXPECT_EQ(out,
            "HTTP/1.1 201 Created\r\nX-Id: 1\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
            "Content-Length: 3\r\nConnection: keep-alive\r\n\r\nabc");
  out.clear();
  write_response(out, r, true, false, "D");
  EXPECT_EQ(out,
            "HTTP/1.1 201 Created\r\nX-Id: 1\r\nDate: D\r\nContent-Length: 3\r\nConnection: "
            "close\r\n\r\n");
}

TEST(HttpRequest, HeaderLookupIgnoresCase) {
  Request q;
  q.headers = {{"Content-Type", "text/plain"}, {"X-A", "1"}};
  EXPECT_EQ(q.header("content-type"), "text/plain");
  EXPECT_EQ(q.header("x-b"), "");
}

}  // namespace
}  // namespace clutch::http
