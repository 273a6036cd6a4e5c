// The virtual board's harness: hdl.board.VirtualBoardTop (Verilated as class Vboard)
// behind a TCP socket. sim/virtual_board.py builds it and `ddfa board serve` runs it.
//
//   virtual_board --listen HOST:PORT --divisor N [--clients N]
//
// It listens on HOST:PORT (port 0: any free port), prints one line
// "listening on HOST:PORT" with the port it got, and serves one client at a time: the
// client's bytes go into the design's `rx` line as UART frames (8N1, N clock cycles a
// bit, back to back), and the bytes of the `tx` line go to the client. The design sees
// exactly the byte stream a board sees on its UART.
//
// Speed: the socket is polled, without blocking, once every CHUNK cycles while the
// design works. When nothing is on its way in or out and the design's `busy` is low
// (and has been for 32 bit periods, so the last reply bytes have left `tx`), nothing in
// the design changes until a byte arrives: the clock then stops, and the harness waits
// in poll() for the client. A client that connects next finds the design as the last
// one left it. Simulated time therefore counts the cycles the board works,
// not the seconds the client thinks.
//
// It stops, printing the simulated cycles, when the client disconnects (after --clients
// clients; 0: never), and on SIGINT or SIGTERM; the exit status is 0 then, 2 for a bad
// argument or a socket that cannot listen.

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "Vboard.h"
#include "verilated.h"

namespace {

// Cycles between two looks at the socket while the design works.
constexpr int CHUNK = 256;
// Milliseconds one wait for the client lasts while the clock is stopped (then the
// stop flag is checked again).
constexpr int IDLE_WAIT_MS = 100;
// Bytes read ahead from the socket, at most (the rest waits in the kernel's buffer).
constexpr size_t RX_QUEUE_MAX = 1 << 16;

volatile std::sig_atomic_t g_signal = 0;

void on_signal(int signo) { g_signal = signo; }

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "virtual board: error: %s\n", what.c_str());
    std::exit(2);
}

[[noreturn]] void usage_error(const std::string& what) {
    fail(what + " (usage: virtual_board --listen HOST:PORT --divisor N [--clients N])");
}

long parse_count(const char* text, const char* option, long min) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (errno || end == text || *end || v < min)
        usage_error(std::string(option) + " takes a whole number of at least " + std::to_string(min) +
                    ", not '" + text + "'");
    return v;
}

// The UART transmitter of the host side: bytes from `queue` onto the `rx` line, back to back.
struct LineOut {
    int divisor;
    std::vector<uint8_t> queue;
    size_t head = 0;
    uint32_t frame = 0;     // start bit, 8 data bits LSB first, stop bit
    int bit = 10;           // bit being sent; 10: idle
    int left = 0;           // cycles left of this bit

    bool idle() const { return bit == 10 && head == queue.size(); }
    size_t pending() const { return queue.size() - head; }

    void push(const uint8_t* data, size_t n) {
        if (head == queue.size()) {
            queue.clear();
            head = 0;
        }
        queue.insert(queue.end(), data, data + n);
    }

    // The line's level for the coming cycle.
    int level() {
        if (bit == 10) {
            if (head == queue.size()) return 1;
            frame = (uint32_t(queue[head++]) << 1) | (1u << 9);
            bit = 0;
            left = divisor;
        }
        int v = (frame >> bit) & 1;
        if (--left == 0) {
            ++bit;
            left = divisor;
        }
        return v;
    }
};

// The UART receiver of the host side: the `tx` line, sampled in the middle of each bit.
struct LineIn {
    int divisor;
    int bit = -1;           // -1: waiting for a start bit; 0: start; 1..8: data; 9: stop
    int left = 0;
    uint32_t shift = 0;
    uint64_t framing_errors = 0;

    bool idle() const { return bit < 0; }

    // One cycle of the line; returns the byte completed on it, or -1.
    int sample(int tx) {
        if (bit < 0) {
            if (!tx) {
                bit = 0;
                left = divisor / 2;       // the middle of the start bit
            }
            return -1;
        }
        if (--left > 0) return -1;
        left = divisor;
        if (bit == 0) {
            if (tx) bit = -1;           // not a start bit after all
            else bit = 1;
            return -1;
        }
        if (bit <= 8) {
            shift = (shift >> 1) | (uint32_t(tx) << 7);
            ++bit;
            return -1;
        }
        bit = -1;                       // the stop bit
        if (!tx) {
            ++framing_errors;
            return -1;
        }
        return int(shift & 0xFF);
    }
};

int listen_on(const std::string& host, const std::string& port, std::string& bound) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) fail("cannot listen on " + host + ":" + port + ": " + gai_strerror(rc) + "; give an address of "
                      "this machine, e.g. 127.0.0.1:5000");
    int fd = -1, err = 0;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        std::string fix = err == EADDRINUSE      ? "choose another port (0: any free one)"
                          : err == EACCES        ? "choose a port of 1024 or more"
                          : err == EADDRNOTAVAIL ? "give an address of this machine, e.g. 127.0.0.1"
                                                 : "check the address";
        fail("cannot listen on " + host + ":" + port + ": " + std::strerror(err) + "; " + fix);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    char name[INET6_ADDRSTRLEN] = "?";
    int got_port = 0;
    if (ss.ss_family == AF_INET6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &s6->sin6_addr, name, sizeof name);
        got_port = ntohs(s6->sin6_port);
        bound = std::string("[") + name + "]:" + std::to_string(got_port);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &s4->sin_addr, name, sizeof name);
        got_port = ntohs(s4->sin_port);
        bound = std::string(name) + ":" + std::to_string(got_port);
    }
    return fd;
}

// Waits for a client; -1 when a signal came first.
int accept_client(int server) {
    while (!g_signal) {
        pollfd p{server, POLLIN, 0};
        int n = poll(&p, 1, IDLE_WAIT_MS);
        if (n <= 0) continue;
        int fd = accept(server, nullptr, nullptr);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        return fd;
    }
    return -1;
}

struct Stats {
    uint64_t cycles = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    double busy_seconds = 0;    // wall-clock time spent clocking the design
};

}  // namespace

int main(int argc, char** argv) {
    std::string listen_arg;
    long divisor = 0;
    long clients = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--listen") listen_arg = value();
        else if (a == "--divisor") divisor = parse_count(value(), "--divisor", 4);
        else if (a == "--clients") clients = parse_count(value(), "--clients", 0);
        else usage_error("unknown argument '" + a + "'");
    }
    if (listen_arg.empty()) usage_error("--listen HOST:PORT is required");
    if (!divisor) usage_error("--divisor N is required");
    size_t colon = listen_arg.rfind(':');
    if (colon == std::string::npos) usage_error("--listen takes HOST:PORT, not '" + listen_arg + "'");
    std::string host = listen_arg.substr(0, colon), port = listen_arg.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

    struct sigaction sa{};
    sa.sa_handler = on_signal;          // no SA_RESTART: poll() returns at once
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    std::string bound;
    int server = listen_on(host, port, bound);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vboard>(context.get());
    // Up to two reply bytes follow the fall of `busy` (docs of VirtualBoardTop): the
    // clock runs on for longer than they take before it stops.
    const uint64_t idle_cycles = 32 * uint64_t(divisor);

    Stats st;
    top->rx = 1;
    top->rst = 1;
    for (int k = 0; k < 4; ++k) {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    }
    top->rst = 0;

    std::printf("listening on %s\n", bound.c_str());
    std::fflush(stdout);

    LineOut line_out{int(divisor)};
    LineIn line_in{int(divisor)};
    std::vector<uint8_t> out;          // bytes from `tx` not yet sent
    uint8_t buf[4096];
    const char* why = "client closed";
    long served = 0;

    while (!g_signal) {
        int fd = accept_client(server);
        if (fd < 0) break;
        ++served;
        bool open = true;
        uint64_t quiet = 0;             // cycles since the design last did anything
        while (open && !g_signal) {
            bool stopped = quiet >= idle_cycles && line_out.idle();
            short events = line_out.pending() < RX_QUEUE_MAX ? POLLIN : 0;
            if (!out.empty()) events |= POLLOUT;
            pollfd p{fd, events, 0};
            int n = poll(&p, 1, stopped ? IDLE_WAIT_MS : 0);
            if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t got = recv(fd, buf, sizeof buf, 0);
                if (got > 0) {
                    line_out.push(buf, size_t(got));
                    st.bytes_in += uint64_t(got);
                } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    open = false;
                    break;
                }
            }
            if (!out.empty() && n > 0 && (p.revents & POLLOUT)) {
                ssize_t sent = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
                if (sent > 0) {
                    st.bytes_out += uint64_t(sent);
                    out.erase(out.begin(), out.begin() + sent);
                } else if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    open = false;
                    break;
                }
            }
            if (stopped && line_out.idle()) continue;     // nothing came: the clock stays stopped
            auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; k < CHUNK; ++k) {
                top->rx = line_out.level();
                top->clk = 0;
                top->eval();
                top->clk = 1;
                top->eval();
                int byte = line_in.sample(top->tx);
                if (byte >= 0) out.push_back(uint8_t(byte));
                if (top->busy || !line_in.idle() || !line_out.idle()) quiet = 0;
                else ++quiet;
            }
            st.cycles += CHUNK;
            st.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (!out.empty()) {         // answer at once rather than a chunk later
                ssize_t sent = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
                if (sent > 0) {
                    st.bytes_out += uint64_t(sent);
                    out.erase(out.begin(), out.begin() + sent);
                }
            }
        }
        close(fd);
        out.clear();                    // what the client can no longer take or send
        line_out.queue.clear();
        line_out.head = 0;
        if (clients && served >= clients) break;
    }
    close(server);
    if (g_signal) why = g_signal == SIGINT ? "SIGINT" : "SIGTERM";
    double rate = st.busy_seconds > 0 ? double(st.cycles) / st.busy_seconds : 0.0;
    std::printf("stopped (%s): %llu cycles simulated in %.2f s of clocking (%.0f cycles/s); "
                "%llu bytes received, %llu bytes sent, %ld client%s\n",
                why, (unsigned long long)st.cycles, st.busy_seconds, rate, (unsigned long long)st.bytes_in,
                (unsigned long long)st.bytes_out, served, served == 1 ? "" : "s");
    if (line_in.framing_errors)
        std::printf("warning: %llu bytes from the design ended with a low stop bit and were dropped\n",
                    (unsigned long long)line_in.framing_errors);
    std::fflush(stdout);
    top->final();
    return 0;
}
