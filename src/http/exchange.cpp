#include <spdlog/spdlog.h>

#include "clutch/http.hpp"
#include "http/exchange_state.hpp"

namespace clutch::http {

const Request& Exchange::request() const {
  return state_->request;
}
Response& Exchange::response() {
  return state_->response;
}
bool Exchange::sent() const {
  return state_->sent;
}
void Exchange::on_send(std::function<void(Response&)> fn) {
  state_->on_send.push_back(std::move(fn));
}

std::string_view Exchange::param(std::string_view name) const {
  for (const auto& [key, value] : state_->params) {
    if (key == name) return value;
  }
  return {};
}

void Exchange::send() {
  if (state_->sent) return;
  state_->sent = true;
  // Outermost middleware registered first, so its hook runs last (the onion's way out).
  for (auto it = state_->on_send.rbegin(); it != state_->on_send.rend(); ++it) {
    try {
      (*it)(state_->response);
    } catch (const std::exception& e) {
      spdlog::error("http on_send hook threw: {}", e.what());
    }
  }
  if (state_->deliver) state_->deliver(*state_);
}

void Exchange::send(int status, std::string body, std::string content_type) {
  state_->response.status = status;
  state_->response.body = std::move(body);
  state_->response.set_header("Content-Type", std::move(content_type));
  send();
}

void Exchange::send_json(int status, std::string json_text) {
  send(status, std::move(json_text), "application/json");
}

}  // namespace clutch::http
