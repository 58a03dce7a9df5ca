#ifndef GYRE_LIBS_TESTING_WEBSOCKET_CLIENT_H_
#define GYRE_LIBS_TESTING_WEBSOCKET_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gyre::testing {

// A blocking WebSocket client for tests (Boost.Beast over a real socket).
// Not thread-safe: one thread uses one client.
class WebSocketClient {
 public:
  ~WebSocketClient();

  // Connects and completes the handshake for `target` with `headers`. A
  // `receive_buffer_bytes` > 0 shrinks the socket's receive buffer (to play
  // a slow reader). A refused handshake is FailedPrecondition with the HTTP
  // status in the message.
  static absl::StatusOr<std::unique_ptr<WebSocketClient>> Connect(
      const std::string& host, int port, const std::string& target,
      const std::vector<std::pair<std::string, std::string>>& headers,
      int receive_buffer_bytes = 0);

  // The next message. When the server closed the connection: OutOfRange
  // with "close CODE: REASON" (close_code() is then set). Unavailable on
  // another error or after `timeout` without a message (the connection is
  // then dropped).
  absl::StatusOr<std::string> Read(absl::Duration timeout = absl::Seconds(30));

  // Drops the connection without a close handshake (a client that dies).
  void Drop();

  int close_code() const { return close_code_; }

 private:
  struct Impl;
  explicit WebSocketClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int close_code_ = 0;
};

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_WEBSOCKET_CLIENT_H_
