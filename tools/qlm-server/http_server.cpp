// HttpServer on Boost.Asio (one io_context, run by one thread) and Beast's parser. While a
// request runs, its connection keeps one read pending: end of stream or an error there means the
// client went away (bytes pipelined meanwhile are kept for the next request). Responses are
// written by hand: a status line, a few headers, and a body or chunks.
#include "http_server.hpp"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <list>
#include <mutex>
#include <optional>

namespace qlm::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr std::size_t kMaxPipelined = 64 * 1024;  // bytes read ahead while a request runs

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, tcp::socket socket);
  void start() { read_request(); }
  void close();
  bool idle() const { return !exchange_running_; }

  // Called on the I/O thread by the exchange.
  void send(std::string bytes, bool last);
  void set_gone_callback(std::function<void()> f);
  void refuse(int status, std::string_view message);  // answers and closes

  std::atomic<bool> gone{false};

 private:
  void read_request();
  void read_message();
  void arm_timer(std::chrono::milliseconds after);
  void on_request(beast::error_code ec);
  void watch();
  void on_watch(beast::error_code ec, std::size_t n);
  void flush();
  void on_written(beast::error_code ec);
  void finish_exchange();
  void client_gone();

  Server& server_;
  tcp::socket socket_;
  net::steady_timer timer_;  // bounds the read of one request (and an idle keep-alive)
  bool timed_out_ = false;
  std::uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool exchange_running_ = false;
  bool response_ended_ = false;
  bool keep_alive_ = true;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool closed_ = false;
  std::function<void()> on_gone_;
};

class Exchange final : public HttpExchange {
 public:
  Exchange(std::weak_ptr<Connection> conn, net::io_context& io, std::atomic<std::size_t>& busy,
           std::chrono::milliseconds idle)
      : conn_(std::move(conn)),
        io_(io),
        busy_(busy),
        // Tells clients when an idle connection will be closed, so they stop reusing it first.
        keep_alive_(
            fmt::format("Keep-Alive: timeout={}\r\n",
                        std::max<long long>(1, static_cast<long long>(idle.count() / 1000)))) {
    busy_.fetch_add(1);
  }
  ~Exchange() override { finish(); }

  void reply(int status, std::string_view content_type, std::string body,
             std::vector<HttpHeader> headers) override {
    std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                                   status, http_reason(status), content_type, body.size());
    for (const auto& h : headers) head += fmt::format("{}: {}\r\n", h.name, h.value);
    head += keep_alive_;
    head += "Access-Control-Allow-Origin: *\r\n\r\n";
    head += body;
    post(std::move(head), true);
  }
  void begin_stream(int status, std::string_view content_type) override {
    post(fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n"
                     "Transfer-Encoding: chunked\r\n{}Access-Control-Allow-Origin: *\r\n\r\n",
                     status, http_reason(status), content_type, keep_alive_),
         false);
  }
  void write(std::string data) override {
    if (data.empty()) return;
    post(fmt::format("{:x}\r\n{}\r\n", data.size(), data), false);
  }
  void end_stream() override { post("0\r\n\r\n", true); }
  bool gone() const override {
    auto c = conn_.lock();
    return !c || c->gone.load();
  }
  void on_gone(std::function<void()> f) override {
    if (gone()) {
      f();
      return;
    }
    net::post(io_, [conn = conn_, f = std::move(f)]() mutable {
      if (auto c = conn.lock()) {
        if (c->gone.load()) {
          f();
        } else {
          c->set_gone_callback(std::move(f));
        }
      } else {
        f();
      }
    });
  }

 private:
  void post(std::string bytes, bool last) {
    if (last) finish();
    net::post(io_, [conn = conn_, bytes = std::move(bytes), last]() mutable {
      if (auto c = conn.lock()) c->send(std::move(bytes), last);
    });
  }
  void finish() {
    if (!finished_.exchange(true)) busy_.fetch_sub(1);
  }

  std::weak_ptr<Connection> conn_;
  net::io_context& io_;
  std::atomic<std::size_t>& busy_;
  const std::string keep_alive_;
  std::atomic<bool> finished_{false};
};

class Server final : public HttpServer {
 public:
  Server(const HttpServerOptions& options, HttpHandler handler)
      : options_(options), handler_(std::move(handler)), acceptor_(io_) {}

  void bind() {
    beast::error_code ec;
    const auto addr = net::ip::make_address(options_.host, ec);
    if (ec) throw std::runtime_error(fmt::format("'{}' is not an IP address", options_.host));
    const tcp::endpoint ep(addr, options_.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    const auto bound = acceptor_.local_endpoint();
    address_ = fmt::format("{}:{}", bound.address().to_string(), bound.port());
  }

  std::string address() const override { return address_; }
  void run() override {
    accept();
    io_.run();
  }
  void stop_accepting() override {
    net::post(io_, [this] { close_connections(true); });
  }
  std::size_t busy() const override { return busy_.load(); }
  void shutdown() override {
    net::post(io_, [this] {
      close_connections(false);
      io_.stop();
    });
  }

  const HttpServerOptions& options() const { return options_; }
  net::io_context& io() { return io_; }
  std::atomic<std::size_t>& busy_counter() { return busy_; }
  bool accepting() const { return accepting_; }
  void dispatch(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
    try {
      handler_(std::move(request), exchange);
    } catch (...) {  // a handler bug must not take the server down
      exchange->reply(500, "application/json",
                      R"({"error":{"message":"internal error","type":"server_error"}})", {});
    }
  }

 private:
  // Closes the listener, then the idle connections (or every one).
  void close_connections(bool idle_only) {
    accepting_ = false;
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto& w : connections_) {
      if (auto c = w.lock(); c && (!idle_only || c->idle())) c->close();
    }
  }

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (accepting_ && ec != net::error::operation_aborted) accept();
        return;
      }
      connections_.remove_if([](const std::weak_ptr<Connection>& w) { return w.expired(); });
      auto c = std::make_shared<Connection>(*this, std::move(socket));
      if (connections_.size() >= options_.max_connections) {
        // Too many: one answer, then closed (the connection frees itself when written).
        c->refuse(503, "the server has too many connections");
      } else {
        connections_.push_back(c);
        c->start();
      }
      if (accepting_) accept();
    });
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  net::io_context io_{1};
  tcp::acceptor acceptor_;
  std::string address_;
  std::list<std::weak_ptr<Connection>> connections_;  // the I/O thread's
  std::atomic<std::size_t> busy_{0};
  bool accepting_ = true;
};

Connection::Connection(Server& server, tcp::socket socket)
    : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()) {}

void Connection::read_request() {
  if (closed_) return;
  if (!server_.accepting()) {
    close();
    return;
  }
  if (buffer_.size() > 0) return read_message();  // pipelined: the request is here already
  // An idle keep-alive connection: wait for the next request's first byte, for a while.
  arm_timer(server_.options().idle_timeout);
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    ++self->timer_generation_;  // whatever the timer does now is stale
    self->timer_.cancel();
    if (ec) return self->close();
    self->read_message();
  });
}

void Connection::read_message() {
  parser_.emplace();
  parser_->body_limit(server_.options().max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(server_.options().max_header_bytes));
  arm_timer(server_.options().read_timeout);
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                     ++self->timer_generation_;
                     self->timer_.cancel();
                     self->on_request(ec);
                   });
}

// When the timer fires first, the pending read is cancelled and reports timed_out_.
void Connection::arm_timer(std::chrono::milliseconds after) {
  timed_out_ = false;
  const std::uint64_t generation = ++timer_generation_;
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
    if (ec || generation != self->timer_generation_) return;
    self->timed_out_ = true;
    beast::error_code ignored;
    self->socket_.cancel(ignored);
  });
}

void Connection::on_request(beast::error_code ec) {
  if (ec == http::error::body_limit) return refuse(413, "the request body is too large");
  if (ec == http::error::header_limit) return refuse(431, "the request headers are too large");
  if (timed_out_ && ec) {
    // A request begun but not finished in time gets told; a quiet keep-alive is just closed.
    if (parser_->got_some()) return refuse(408, "the request did not arrive in time");
    return close();
  }
  if (ec) {
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream) {
      return refuse(400, "malformed HTTP request");
    }
    return close();
  }
  auto msg = parser_->release();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  const std::string_view target(msg.target().data(), msg.target().size());
  req.path = std::string(target.substr(0, target.find('?')));
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    req.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  beast::error_code peer_ec;
  const auto peer = socket_.remote_endpoint(peer_ec);
  if (!peer_ec) req.peer = fmt::format("{}:{}", peer.address().to_string(), peer.port());
  keep_alive_ = msg.keep_alive();
  exchange_running_ = true;
  response_ended_ = false;
  on_gone_ = nullptr;
  auto exchange = std::make_shared<Exchange>(weak_from_this(), server_.io(), server_.busy_counter(),
                                             server_.options().idle_timeout);
  watch();
  server_.dispatch(std::move(req), std::move(exchange));
}

void Connection::refuse(int status, std::string_view message) {
  keep_alive_ = false;
  exchange_running_ = true;
  response_ended_ = false;
  const std::string body =
      fmt::format(R"({{"error":{{"message":"{}","type":"{}","code":{}}}}})", message,
                  status == 503 ? "unavailable_error" : "invalid_request_error", status);
  send(fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                   "{}Connection: close\r\n\r\n{}",
                   status, http_reason(status), body.size(),
                   status == 503 ? "Retry-After: 1\r\n" : "", body),
       true);
}

// One read stays pending while a request runs: it ends with an error only when the client goes.
void Connection::watch() {
  if (closed_ || watching_ || buffer_.size() >= kMaxPipelined) return;
  watching_ = true;
  socket_.async_read_some(
      buffer_.prepare(4096),
      [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_watch(ec, n); });
}

void Connection::on_watch(beast::error_code ec, std::size_t n) {
  watching_ = false;
  if (!ec) {
    buffer_.commit(n);  // pipelined bytes: the next request's
    if (exchange_running_) {
      watch();
    } else if (read_after_watch_) {
      read_after_watch_ = false;
      read_request();
    }
    return;
  }
  if (ec == net::error::operation_aborted && read_after_watch_) {
    read_after_watch_ = false;
    read_request();
    return;
  }
  if (ec != net::error::operation_aborted) client_gone();
}

void Connection::client_gone() {
  if (gone.exchange(true)) return;
  if (auto f = std::move(on_gone_); f && exchange_running_ && !response_ended_) f();
  on_gone_ = nullptr;
  close();
}

void Connection::set_gone_callback(std::function<void()> f) {
  if (exchange_running_ && !response_ended_) on_gone_ = std::move(f);
}

void Connection::send(std::string bytes, bool last) {
  if (closed_ || response_ended_) return;
  out_.push_back(std::move(bytes));
  if (last) response_ended_ = true;
  flush();
}

void Connection::flush() {
  if (writing_ || out_.empty() || closed_) return;
  writing_ = true;
  net::async_write(
      socket_, net::buffer(out_.front()),
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_written(ec); });
}

void Connection::on_written(beast::error_code ec) {
  writing_ = false;
  if (ec) return client_gone();
  out_.pop_front();
  if (!out_.empty()) return flush();
  if (response_ended_) finish_exchange();
}

void Connection::finish_exchange() {
  exchange_running_ = false;
  on_gone_ = nullptr;
  if (!keep_alive_ || !server_.accepting()) return close();
  if (watching_) {
    // The pending read must end before the parser reads; cancel() ends it at once.
    read_after_watch_ = true;
    beast::error_code ignored;
    socket_.cancel(ignored);
  } else {
    read_request();
  }
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  if (exchange_running_ && !response_ended_) gone = true;
  beast::error_code ec;
  timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace

std::string_view http_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen(const HttpServerOptions& options,
                                                       HttpHandler handler) {
  auto server = std::make_unique<Server>(options, std::move(handler));
  try {
    server->bind();
  } catch (const std::exception& e) {
    return Error{ErrorCode::Io,
                 fmt::format("cannot listen on {}:{}: {}", options.host, options.port, e.what())};
  }
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace qlm::server
