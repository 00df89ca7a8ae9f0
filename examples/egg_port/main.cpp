// egg_port: a typical egg app, ported line for line (see README.md beside this file).
//   agent.js            -> the agent refreshes a config cache every 5 s and broadcasts it
//   app.js              -> each worker keeps the cache it was sent, counts requests
//   app/router.js       -> GET /config, GET /hits, POST /jobs/report (runs the schedule now)
//   app/schedule/*.js   -> "report" every 10 s on one worker, "warmup" once at start
//   a queue consumer    -> "orders" on the embedded SQLite queue, handled by one worker each
// Environment: EGG_PORT_QUEUE (default sqlite:egg-port-queue.db).
#include <clutch/app.hpp>
#include <clutch/coro.hpp>
#include <clutch/http.hpp>
#include <clutch/mq.hpp>
#include <clutch/schedule.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

std::string queue_url() {
  const char* v = std::getenv("EGG_PORT_QUEUE");
  return v != nullptr && *v != '\0' ? v : "sqlite:egg-port-queue.db";
}

// agent.js: `agent.messenger.on('egg-ready', ...)` + `setInterval(refresh, 5000)`.
void agent(clutch::Context& ctx) {
  auto version = std::make_shared<int>(0);
  auto refresh = [&ctx, version] {
    // Where egg would `await` a remote fetch; here the config is made up.
    std::string config = "{\"version\":" + std::to_string(++*version) + "}";
    ctx.messenger().send_to_app("config-updated", config);  // app.messenger.on('config-updated')
  };
  ctx.on_ready([&ctx, refresh] {
    refresh();
    ctx.set_interval(std::chrono::seconds(5), refresh);
  });
  // A worker asks for the config on start (egg: app.messenger.sendToAgent('get-config')).
  ctx.messenger().on("get-config", [version](const clutch::Message& m) {
    m.reply("{\"version\":" + std::to_string(*version) + "}");
  });
}

// app.js and app/router.js.
void worker(clutch::Context& ctx) {
  auto config = std::make_shared<std::string>("{}");
  auto& hits = ctx.metrics().counter("egg_port_hits_total", "Requests to /hits.");
  ctx.messenger().on("config-updated",
                     [config](const clutch::Message& m) { *config = std::string(m.data()); });
  // egg: `const cfg = await app.messenger.request(...)` in an async `didReady` hook.
  ctx.on_ready([&ctx, config] {
    [](clutch::Context& c, std::shared_ptr<std::string> cfg) -> clutch::Task {
      clutch::Reply r = co_await clutch::co::request(c.messenger(), clutch::Target::agent(),
                                                     "get-config", "", std::chrono::seconds(5));
      if (r.ok && *cfg == "{}") *cfg = r.data;
    }(ctx, config);
  });

  clutch::http::Router router;
  // The config arrives just after ready (the agent's broadcast, or this worker's own request):
  // a request before it gets 503, not an empty config.
  router.get("/config", [config](clutch::http::Exchange ex) {
    if (*config == "{}") return ex.send_json(503, R"({"error":"config not loaded yet"})");
    ex.send_json(200, *config);
  });
  router.get("/hits", [&hits](clutch::http::Exchange ex) {
    hits.inc();
    ex.send(200, "counted\n");
  });
  // egg: `await app.runSchedule('report')`.
  router.post("/jobs/report", [&ctx](clutch::http::Exchange ex) {
    clutch::run_job_now(ctx, "report", [ex](bool ok, const std::string& error) mutable {
      ex.send(ok ? 200 : 500, ok ? "report started\n" : error + "\n");
    });
  });
  clutch::http::serve(ctx, std::move(router));
}

}  // namespace

int main(int argc, char** argv) {
  clutch::App app("egg_port");
  app.agent(agent).worker(worker);
  // app/schedule/report.js: { schedule: { interval: '10s', type: 'worker' } }
  app.schedule({.name = "report", .interval = "10s"}, [](clutch::Context& ctx) {
    ctx.metrics().counter("egg_port_reports_total", "Reports made.").inc();
  });
  // app/schedule/warmup.js: { schedule: { immediate: true } }, no interval: runs once at start.
  app.schedule({.name = "warmup", .immediate = true}, [](clutch::Context& ctx) {
    ctx.metrics().counter("egg_port_warmups_total", "Warm-ups run.").inc();
  });
  // An MQ consumer (egg apps wire one in agent.js and sendRandom to a worker by hand; this is the
  // seed's fix: each message runs on exactly one worker, acknowledged after it).
  app.consume_async({.name = "orders", .url = queue_url()},
                    [](clutch::Context& ctx, clutch::QueueMessage m) -> clutch::Task {
                      co_await clutch::co::sleep(ctx, std::chrono::milliseconds(1));  // your I/O
                      ctx.metrics().counter("egg_port_orders_total", "Orders handled.").inc();
                    });
  return app.run(argc, argv);
}
