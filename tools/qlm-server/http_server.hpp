// A small HTTP/1.1 server on Boost.Asio with Beast's request parser: one I/O thread serves any
// number of keep-alive connections, each request gets a reply channel usable from any thread, and
// a client that goes away while its request runs is noticed at once (docs/serving.md says why
// this and not cpp-httplib). Nothing of Boost shows through this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <qlm/error.hpp>

namespace qlm::server {

/// One parsed request.
struct HttpRequest {
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< the target without its query
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names in lower case
  std::string peer;                                          ///< the client's address
  /// The first value of header `name` (lower case), or "".
  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

/// A response header.
struct HttpHeader {
  std::string name, value;
};

/// The reply side of one request. Every member may be called from any thread; what is sent after
/// the client went away is dropped. Exactly one of reply() or begin_stream()...end_stream().
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  /// A complete response with a Content-Length.
  virtual void reply(int status, std::string_view content_type, std::string body,
                     std::vector<HttpHeader> headers = {}) = 0;
  /// Starts a chunked response (server-sent events use text/event-stream).
  virtual void begin_stream(int status, std::string_view content_type) = 0;
  /// Sends one piece of a begun stream (empty pieces are skipped).
  virtual void write(std::string data) = 0;
  /// Ends a begun stream.
  virtual void end_stream() = 0;
  /// Whether the client has gone: closed its connection, or a write to it failed.
  virtual bool gone() const = 0;
  /// `f` runs once, on the I/O thread, when the client goes before the response has ended; at
  /// once (on the caller's thread) when it has gone already. Replaces an earlier `f`.
  virtual void on_gone(std::function<void()> f) = 0;
};

/// Called on the I/O thread for each request; may reply later from any thread.
using HttpHandler = std::function<void(HttpRequest, std::shared_ptr<HttpExchange>)>;

/// Limits and address.
struct HttpServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0 picks a free port
  std::size_t max_body_bytes = std::size_t{8} << 20;
  std::size_t max_header_bytes = std::size_t{16} << 10;
  /// A request must arrive whole within this once it has begun (408 otherwise): a slow or
  /// half-sent client holds nothing for longer.
  std::chrono::milliseconds read_timeout{30'000};
  /// An idle keep-alive connection is closed after this (responses say so in Keep-Alive).
  std::chrono::milliseconds idle_timeout{10'000};
  std::size_t max_connections = 1024;  ///< more are answered 503 and closed
};

/// Listens on construction; serves on the thread that calls run().
class HttpServer {
 public:
  /// Binds and listens; errors name the address.
  static Result<std::unique_ptr<HttpServer>> listen(const HttpServerOptions& options,
                                                    HttpHandler handler);
  virtual ~HttpServer() = default;
  /// "HOST:PORT" as bound (the port chosen when 0 was asked).
  virtual std::string address() const = 0;
  /// Serves until shutdown(); returns when every connection is closed.
  virtual void run() = 0;
  /// Stops taking connections and closes the idle ones; running requests go on. Any thread.
  virtual void stop_accepting() = 0;
  /// Requests whose response has not ended. Any thread.
  virtual std::size_t busy() const = 0;
  /// Closes every connection and makes run() return. Any thread.
  virtual void shutdown() = 0;
};

/// The reason phrase of an HTTP status ("OK", "Not Found", ...).
std::string_view http_reason(int status);

}  // namespace qlm::server
