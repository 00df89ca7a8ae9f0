// hello: every messenger call in one small app. The agent ticks once a second and hands each
// tick to exactly one worker (acknowledged); workers answer the agent, ask it questions, greet
// each other, and serve HTTP: GET / (hello world) and GET /ticks (after a round trip to the agent).
#include <spdlog/spdlog.h>
#include <clutch/app.hpp>
#include <clutch/http.hpp>

#include <string>

int main(int argc, char** argv) {
  clutch::App app("hello");

  app.agent([](clutch::Context& ctx) {
    auto& m = ctx.messenger();
    // A worker asks the agent for the tick count; the agent replies.
    auto ticks = std::make_shared<int>(0);
    m.on("ticks?", [ticks](const clutch::Message& msg) { msg.reply(std::to_string(*ticks)); });
    m.on("tick-done", [](const clutch::Message& msg) {
      spdlog::info("worker {} finished {}", msg.sender().pid, msg.data());
    });
    // A broadcast reaches every process, its sender included (egg's messenger.broadcast too).
    m.on("hello", [](const clutch::Message& msg) { spdlog::info("agent hears: {}", msg.data()); });
    m.on("clutch:pids",
         [](const clutch::Message& msg) { spdlog::info("workers now: {}", msg.data()); });
    ctx.on_ready([&ctx, ticks] {
      ctx.messenger().broadcast("hello", "the cluster is ready");
      ctx.set_interval(std::chrono::seconds(1), [&ctx, ticks] {
        std::string tick = "tick " + std::to_string(++*ticks);
        // Exactly one worker runs each tick; if it dies first, another one does.
        ctx.messenger().send_random("tick", tick, [tick](const clutch::AckResult& r) {
          if (!r.ok) spdlog::warn("{} failed: {}", tick, r.error);
        });
        if (*ticks % 5 == 0) ctx.messenger().send_to_app("status", "5 more ticks");
      });
    });
  });

  app.worker([](clutch::Context& ctx) {
    auto& m = ctx.messenger();
    m.on("hello", [&ctx](const clutch::Message& msg) {
      spdlog::info("{} says: {}", clutch::to_string(msg.sender().role), msg.data());
      // Greet the other workers, once.
      if (ctx.worker_index() == 0) ctx.messenger().send_to_others("greeting", "hi from worker 0");
    });
    m.on("greeting",
         [](const clutch::Message& msg) { spdlog::info("got greeting: {}", msg.data()); });
    m.on("status", [](const clutch::Message& msg) { spdlog::info("status: {}", msg.data()); });
    m.on("tick", [&ctx](const clutch::Message& msg) {
      ctx.messenger().send_to_agent("tick-done", msg.data());
      ctx.messenger().request(clutch::Target::agent(), "ticks?", {}, std::chrono::seconds(1),
                              [](const clutch::Reply& reply) {
                                if (reply.ok)
                                  spdlog::info("the agent has ticked {} times", reply.data);
                              });
    });
    // HTTP on the port the master bound: one answers at once, one after a round trip to the agent.
    clutch::http::Router router;
    router.get("/", [](clutch::http::Exchange ex) { ex.send(200, "hello world"); });
    router.get("/ticks", [&ctx](clutch::http::Exchange ex) {
      ctx.messenger().request(clutch::Target::agent(), "ticks?", {}, std::chrono::seconds(1),
                              [ex](const clutch::Reply& reply) mutable {
                                if (!reply.ok) return ex.send(503, reply.error);
                                ex.send_json(200, "{\"ticks\":" + reply.data + "}");
                              });
    });
    clutch::http::serve(ctx, std::move(router));
    ctx.messenger().on_member([](const clutch::MemberEvent& ev) {
      spdlog::debug("{} {} {}", clutch::to_string(ev.role), ev.pid, ev.joined ? "joined" : "left");
    });
  });

  return app.run(argc, argv);
}
