// gyre-gateway: REST/WebSocket front door for API clients.
//
//   gyre-gateway [flags]              serve
//   gyre-gateway hash-password        read a password on stdin, print the
//                                     Argon2id hash a basic_users entry takes
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "libs/server/service_main.h"
#include "services/gateway/gateway_module.h"
#include "services/gateway/password_authenticator.h"

namespace {

// The password comes on stdin, never as an argument: arguments are visible
// to every user of the machine (ps) and kept in shell histories.
int HashPassword() {
  std::string password;
  std::getline(std::cin, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  absl::StatusOr<std::string> hash = gyre::gateway::PasswordAuthenticator::HashPassword(password);
  if (!hash.ok()) {
    std::fprintf(stderr, "gyre-gateway hash-password: %s\n",
                 std::string(hash.status().message()).c_str());
    return 2;
  }
  std::printf("%s\n", hash->c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "hash-password") == 0) return HashPassword();
  gyre::gateway::GatewayModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-gateway", "gateway", "0.0.0.0:50056", "0.0.0.0:9106"}, &module);
}
