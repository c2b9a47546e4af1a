// qlm-bench: prompt-processing (ppN) and generation (tgN) throughput over repetitions, per thread
// count and KV cache depth, like llama.cpp's llama-bench; plus model size, bits per weight, KV
// cache size and peak memory. For generation it also reports the bytes streamed per second
// (weights + KV read per token) and, with --bandwidth, that rate as a share of a read probe: the
// bound a memory-bound decoder is judged by.
#include <sys/resource.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <qlm/engine.hpp>
#include <qlm/format/model_file.hpp>
#include <qlm/model.hpp>
#include <qlm/session.hpp>
#include <thread>

#include "cli_util.hpp"
#include "read_probe.hpp"

namespace {

struct Row {
  std::string test;
  int threads;
  int seqs;
  double mean, stddev;
  std::size_t kv_bytes;
  double stream_gbs = 0.0;  ///< tg only: bytes read per token x tokens per second
};

// Bytes one generated token reads: every tensor except an untied token embedding (one row of it
// is looked up), plus the keys and values of `positions` cached tokens.
// The tensor table's names and sizes (read from the file, then the file is closed).
struct TensorSizes {
  std::vector<std::pair<std::string, std::uint64_t>> tensors;
  std::uint64_t params = 0, bytes = 0, file_bytes = 0;
};

qlm::Result<TensorSizes> tensor_sizes(const std::string& path) {
  auto file = qlm::format::ModelFile::open(path);
  if (!file) return file.error();
  TensorSizes s;
  for (const auto& t : (*file)->tensors()) {
    s.tensors.emplace_back(t.name, t.size);
    s.params += t.elements();
    s.bytes += t.size;
  }
  s.file_bytes = (*file)->file_size();
  return s;
}

double bytes_per_token(const qlm::ModelConfig& c, const TensorSizes& sizes, double positions,
                       std::size_t kv_elem_bytes) {
  double bytes = 0.0;
  for (const auto& t : sizes.tensors) {
    // (a mixed file may store it in row bands, "model.embed_tokens.weight[r0:r1]")
    if (t.first.starts_with("model.embed_tokens.weight") && !c.tie_word_embeddings) {
      bytes += static_cast<double>(t.second) / c.vocab_size;
    } else {
      bytes += static_cast<double>(t.second);
    }
  }
  const double kv_per_position =
      2.0 * c.n_layers * c.n_kv_heads * c.head_dim * static_cast<double>(kv_elem_bytes);
  return bytes + positions * kv_per_position;
}

// Deterministic token ids below the vocabulary size.
std::vector<std::int32_t> token_ids(int n, std::int32_t vocab, int salt) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = (i * 7919 + 13 + salt) % vocab;
  return ids;
}

// Tokens per second of one run on a session that holds `depth` tokens (the cache is rolled back
// to them first): pp evaluates n prompt tokens at once; tg evaluates one token after another
// (at depth 0 after a 1-token start that is not timed).
double run_once(qlm::Session& session, bool prompt, int n, int depth, std::string& error) {
  const auto vocab = static_cast<std::int32_t>(session.model().config().vocab_size);
  auto kept = session.truncate(static_cast<std::uint32_t>(depth));
  if (!kept) {
    error = kept.error().message;
    return 0.0;
  }
  if (*kept < static_cast<std::uint32_t>(depth)) {  // a sliding window let the keys go: refill
    const auto warm = token_ids(depth, vocab, 0);
    if (auto r = session.eval(std::span(warm).subspan(*kept)); !r) error = r.error().message;
  }
  const std::vector<std::int32_t> ids = token_ids(n, vocab, 1);
  using Clock = std::chrono::steady_clock;
  if (prompt) {
    const auto t0 = Clock::now();
    auto r = session.eval(ids);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!r) error = r.error().message;
    return n / s;
  }
  if (depth == 0) {
    std::int32_t first = 1;
    if (auto r = session.eval(std::span(&first, 1)); !r) error = r.error().message;
  }
  const auto t0 = Clock::now();
  for (int i = 0; i < n && error.empty(); ++i) {
    auto r = session.eval(std::span(&ids[static_cast<std::size_t>(i)], 1));
    if (!r) error = r.error().message;
  }
  return n / std::chrono::duration<double>(Clock::now() - t0).count();
}

// Tokens per second of one run of `seqs` sequences evaluated together (each holding `depth`
// tokens first): pp evaluates n distinct prompt tokens per sequence in one batch; tg then decodes
// n tokens per sequence, one batch per step. Rates count the tokens of all sequences.
double run_parallel(qlm::Engine& engine, std::vector<qlm::SequenceId>& seqs, bool prompt, int n,
                    int depth, std::string& error) {
  const auto vocab = static_cast<std::int32_t>(engine.model().config().vocab_size);
  std::vector<std::vector<std::int32_t>> ids;
  std::vector<qlm::BatchItem> items;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    auto kept = engine.truncate(seqs[i], static_cast<std::uint32_t>(depth));
    if (!kept) {
      error = kept.error().message;
      return 0.0;
    }
    if (*kept < static_cast<std::uint32_t>(depth)) {  // a sliding window let the keys go: refill
      const auto warm = token_ids(depth, vocab, 0);
      const qlm::BatchItem item{seqs[i], std::span(warm).subspan(*kept)};
      if (auto r = engine.eval({&item, 1}); !r) error = r.error().message;
    }
    ids.push_back(token_ids(n + 1, vocab, 1 + 31 * static_cast<int>(i)));
  }
  auto step = [&](std::size_t first, std::size_t count) {
    items.clear();
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      items.push_back({seqs[i], std::span(ids[i]).subspan(first, count)});
    }
    if (auto r = engine.eval(items); !r) error = r.error().message;
  };
  using Clock = std::chrono::steady_clock;
  if (prompt) {
    const auto t0 = Clock::now();
    step(0, static_cast<std::size_t>(n));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return static_cast<double>(seqs.size()) * n / s;
  }
  const std::size_t offset = depth == 0 ? 1 : 0;  // at depth 0, a 1-token start is not timed
  if (offset != 0) step(0, 1);
  const auto t0 = Clock::now();
  for (int i = 0; i < n && error.empty(); ++i) step(offset + static_cast<std::size_t>(i), 1);
  return static_cast<double>(seqs.size()) * n /
         std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark prompt processing and generation speed of a .qlm model"};
  std::string path, pp = "512", tg = "64", depths = "0", threads, format = "md", isa;
  std::string kv_type = "f32", parallel;
  int reps = 5;
  std::uint32_t batch = 0;
  app.add_option("-m,--model", path, ".qlm model")->required();
  app.add_option("-p,--n-prompt", pp, "prompt lengths, comma-separated (default 512; 0 = none)");
  app.add_option("-n,--n-gen", tg, "generation lengths, comma-separated (default 64; 0 = none)");
  app.add_option("-t,--threads", threads, "thread counts, comma-separated (default: all cores)");
  app.add_option("-r,--repetitions", reps, "repetitions (default 5)")
      ->check(qlm::tools::whole_number(1, 1000));
  app.add_option("-o,--output", format, "md|csv|json (default md)");
  app.add_option("-d,--depth", depths,
                 "tokens in the KV cache before each test, comma-separated (default 0)");
  app.add_option("--kv-type", kv_type, "KV cache element type: f32 or f16 (default f32)")
      ->check(CLI::IsMember({"f32", "f16"}));
  app.add_option("-b,--batch", batch,
                 "prompt tokens per forward chunk (default 0: 256, fewer for small models)")
      ->check(CLI::Range(0u, 1u << 16));
  app.add_option("--isa", isa, "force a kernel ISA (default: best)");
  app.add_option("--parallel", parallel,
                 "sequence counts, comma-separated: each test runs that many distinct sequences "
                 "together through one Engine (t/s counts all of them)");
  std::string activations = "auto";
  app.add_option(
         "--activations", activations,
         "matmul inputs: auto (two int8 passes into q8 weights), int8 or int8x2 (default auto)")
      ->check(CLI::IsMember({"auto", "int8", "int8x2"}));
  std::string pool = "spin";
  app.add_option("--pool", pool, "thread pool: spin (qlm's own, the default) or omp (OpenMP)")
      ->check(CLI::IsMember({"omp", "spin"}));
  bool no_mmap = false;
  app.add_flag("--no-mmap", no_mmap,
               "read the model into private memory instead of mapping it (huge pages)");
  bool bandwidth = false;
  app.add_flag("--bandwidth", bandwidth,
               "after the tests, probe read bandwidth (1 GiB, per thread count) and report tg "
               "speed as a share of it");
  qlm::tools::IntegrityOptions integrity;
  integrity.add_to(app);
  CLI11_PARSE(app, argc, argv);
  if (format != "md" && format != "csv" && format != "json") {
    fmt::print(stderr, "qlm-bench: unknown output format '{}'\n", format);
    return 2;
  }
  if (threads.empty()) threads = std::to_string(std::thread::hardware_concurrency());
  // Lists are checked before the model is opened: a typo costs no load.
  std::string list_error;
  constexpr int kMaxTokens = 1 << 24;
  const auto pp_list = qlm::tools::parse_int_list(pp, "-p", 0, kMaxTokens, list_error);
  const auto tg_list = qlm::tools::parse_int_list(tg, "-n", 0, kMaxTokens, list_error);
  const auto depth_list = qlm::tools::parse_int_list(depths, "-d", 0, kMaxTokens, list_error);
  const auto thread_list =
      qlm::tools::parse_int_list(threads, "-t", 1, qlm::tools::kMaxThreads, list_error);
  const auto seq_list = qlm::tools::parse_int_list(parallel.empty() ? "1" : parallel, "--parallel",
                                                   1, 4096, list_error);
  if (!pp_list || !tg_list || !depth_list || !thread_list || !seq_list) {
    fmt::print(stderr, "qlm-bench: {}\n", list_error);
    return 2;
  }

  using Clock = std::chrono::steady_clock;
  const auto open_start = Clock::now();
  auto model = qlm::Model::open(path, {.verify_checksums = integrity.verify,
                                       .populate = true,
                                       .mmap = !no_mmap,
                                       .trusted_keys = integrity.keys()});
  const double open_seconds = std::chrono::duration<double>(Clock::now() - open_start).count();
  if (!model) {
    fmt::print(stderr, "qlm-bench: {}\n", model.error().message);
    return 1;
  }
  // The tensor table, read on its own (the Model keeps its file to itself).
  const auto sizes = tensor_sizes(path);
  if (!sizes) {
    fmt::print(stderr, "qlm-bench: {}\n", sizes.error().message);
    return 1;
  }
  const std::uint64_t params = sizes->params, bytes = sizes->bytes;
  std::vector<Row> rows;
  std::vector<std::pair<bool, int>> tests;
  for (int n : *pp_list)
    if (n > 0) tests.emplace_back(true, n);
  for (int n : *tg_list)
    if (n > 0) tests.emplace_back(false, n);
  const auto vocab = static_cast<std::int32_t>((*model)->config().vocab_size);
  const qlm::KvType kv = *qlm::parse_kv_type(kv_type);
  const auto make_pool = [&](int t) {
    return pool == "spin" ? qlm::make_spin_pool(t) : qlm::make_openmp_pool(t);
  };
  const auto activation = *qlm::parse_activation_precision(activations);
  // One measurement: a fresh session (or engine, with --parallel) holding `depth` tokens, a short
  // warm-up, then one timed run. Returns tokens per second; sets kv_bytes, or error.
  const auto measure = [&](int t, int depth, int seqs, bool prompt, int n, std::size_t& kv_bytes,
                           std::string& error) -> double {
    const auto context = static_cast<std::uint32_t>(depth + n + 8);
    double rate = 0.0;
    if (parallel.empty()) {
      auto session = qlm::Session::create(*model, {.context = context,
                                                   .kv_type = kv,
                                                   .isa = isa,
                                                   .pool = make_pool(t),
                                                   .batch = batch,
                                                   .activations = activation});
      if (!session) error = session.error().message;
      if (error.empty() && depth > 0) {
        if (auto r = session->eval(token_ids(depth, vocab, 0)); !r) error = r.error().message;
      }
      if (error.empty()) run_once(*session, prompt, std::min(n, 16), depth, error);  // warm-up
      if (error.empty()) rate = run_once(*session, prompt, n, depth, error);
      if (error.empty()) kv_bytes = session->kv_bytes();
      return rate;
    }
    // An engine whose pool is just large enough for every sequence's context.
    const std::size_t seq_bytes = qlm::kv_sequence_bytes((*model)->config(), kv, context, context);
    auto engine = qlm::Engine::create(*model, {.kv_bytes = seqs * seq_bytes,
                                               .context = context,
                                               .kv_type = kv,
                                               .pool = make_pool(t),
                                               .isa = isa,
                                               .batch = batch,
                                               .activations = activation});
    if (!engine) error = engine.error().message;
    std::vector<qlm::SequenceId> ids;
    for (int i = 0; i < seqs && error.empty(); ++i) {
      ids.push_back(engine->add());
      if (depth > 0) {
        const auto warm = token_ids(depth, vocab, 0);
        const qlm::BatchItem item{ids.back(), warm};
        if (auto r = engine->eval({&item, 1}); !r) error = r.error().message;
      }
    }
    if (error.empty()) run_parallel(*engine, ids, prompt, std::min(n, 16), depth, error);
    if (error.empty()) rate = run_parallel(*engine, ids, prompt, n, depth, error);
    if (error.empty()) kv_bytes = engine->pool_stats().pages * engine->pool_stats().page_bytes;
    return rate;
  };
  struct Case {
    int t, depth, seqs;
    bool prompt;
    int n;
    std::vector<double> v;
    std::size_t kv_bytes = 0;
  };
  // With --parallel a tg test decodes after each prompt test, as llama-batched-bench's S_TG does
  // (its sequences hold the npp prompt): `-p 512 -n 128` gives pp512 and tg128 @ d512. Without,
  // tests are independent as in llama-bench, and tg starts from -d alone.
  std::vector<int> tg_after;
  for (auto [prompt, n] : tests)
    if (prompt && !parallel.empty()) tg_after.push_back(n);
  if (tg_after.empty()) tg_after.push_back(0);
  std::vector<Case> cases;
  for (int t : *thread_list) {
    for (int depth : *depth_list) {
      for (int seqs : *seq_list) {
        for (auto [prompt, n] : tests) {
          if (prompt) {
            cases.push_back({t, depth, seqs, prompt, n, {}, 0});
            continue;
          }
          for (int p : tg_after) cases.push_back({t, depth + p, seqs, prompt, n, {}, 0});
        }
      }
    }
  }
  // Repetitions go round the tests (every test once, then again), so a machine whose speed drifts
  // over minutes biases no row against another: --parallel's rows are compared as ratios.
  for (int r = 0; r < reps; ++r) {
    for (Case& c : cases) {
      std::string error;
      const double rate = measure(c.t, c.depth, c.seqs, c.prompt, c.n, c.kv_bytes, error);
      if (!error.empty()) {
        fmt::print(stderr, "qlm-bench: {}\n", error);
        return 1;
      }
      c.v.push_back(rate);
    }
  }
  const double weights = bytes_per_token((*model)->config(), *sizes, 0.0, kv_type_size(kv));
  for (const Case& c : cases) {
    const auto& v = c.v;
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double var = 0.0;
    for (double x : v) var += (x - mean) * (x - mean);
    std::string test = (c.prompt ? "pp" : "tg") + std::to_string(c.n);
    if (c.depth > 0) test += " @ d" + std::to_string(c.depth);
    // Average cached positions a timed tg token attends to (depth 0 starts after 1 token).
    const double positions = c.depth + (c.depth == 0 ? 1.0 : 0.0) + (c.n + 1) / 2.0;
    // Weights are read once per step for all sequences; each reads its own keys.
    const double per_step =
        weights +
        c.seqs *
            (bytes_per_token((*model)->config(), *sizes, positions, kv_type_size(kv)) - weights);
    const double gbs = c.prompt ? 0.0 : mean / c.seqs * per_step / 1e9;
    rows.push_back({test, c.t, c.seqs, mean, v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0,
                    c.kv_bytes, gbs});
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double peak_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  // The probe runs after peak memory is taken (its 1 GiB buffer is not the model's).
  std::map<int, double> probe;
  if (bandwidth) {
    for (const Row& r : rows) {
      if (!probe.contains(r.threads)) {
        probe[r.threads] = qlm::tools::read_bandwidth_gbs(std::size_t{1} << 30, r.threads, 5);
      }
    }
  }
  const auto share = [&](const Row& r) {
    const auto it = probe.find(r.threads);
    return r.stream_gbs > 0.0 && it != probe.end() && it->second > 0.0
               ? 100.0 * r.stream_gbs / it->second
               : 0.0;
  };
  const std::string name = std::filesystem::path(path).filename().string();
  const double bpw = 8.0 * static_cast<double>(bytes) / static_cast<double>(params);
  const auto gbs_text = [](double v) { return v > 0.0 ? fmt::format("{:.2f}", v) : "-"; };
  if (format == "md") {
    fmt::print(
        "| model | size | params | bpw | kv | act | kv cache | threads | seqs | test | t/s | GB/s "
        "|{}\n",
        bandwidth ? " of bound |" : "");
    fmt::print(
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |{}\n",
        bandwidth ? " ---: |" : "");
    for (const auto& r : rows) {
      fmt::print(
          "| {} | {} | {:.2f} M | {:.2f} | {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {} "
          "|{}\n",
          name, qlm::tools::human_bytes(bytes), params / 1e6, bpw, kv_type, activations,
          qlm::tools::human_bytes(r.kv_bytes), r.threads, r.seqs, r.test, r.mean, r.stddev,
          gbs_text(r.stream_gbs),
          bandwidth ? (share(r) > 0.0 ? fmt::format(" {:.0f}% |", share(r)) : " - |") : "");
    }
    fmt::print("\npeak memory: {:.1f} MiB (model file {})\n", peak_mib,
               qlm::tools::human_bytes(sizes->file_bytes));
    fmt::print("model open: {:.3f} s{}{}\n", open_seconds,
               integrity.verify ? ", checksums verified" : "",
               integrity.trusted_keys.empty() ? "" : ", signature verified");
    for (const auto& [t, gbs] : probe) {
      fmt::print("read bandwidth probe: {:.2f} GB/s with {} thread{}\n", gbs, t, t == 1 ? "" : "s");
    }
  } else if (format == "csv") {
    fmt::print(
        "model,size_bytes,params,bpw,kv_type,kv_bytes,threads,test,tps_mean,tps_stddev,"
        "peak_mib,stream_gbs,probe_gbs,activations,seqs\n");
    for (const auto& r : rows) {
      fmt::print("{},{},{},{:.4f},{},{},{},{},{:.4f},{:.4f},{:.1f},{:.6f},{:.3f},{},{}\n", name,
                 bytes, params, bpw, kv_type, r.kv_bytes, r.threads, r.test, r.mean, r.stddev,
                 peak_mib, r.stream_gbs, probe.contains(r.threads) ? probe[r.threads] : 0.0,
                 activations, r.seqs);
    }
  } else {
    fmt::print("[\n");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      fmt::print(
          "  {{\"model\": \"{}\", \"size_bytes\": {}, \"params\": {}, \"bpw\": {:.4f}, "
          "\"kv_type\": \"{}\", \"kv_bytes\": {}, \"threads\": {}, \"test\": \"{}\", "
          "\"tps_mean\": {:.4f}, \"tps_stddev\": {:.4f}, \"peak_mib\": {:.1f}, "
          "\"stream_gbs\": {:.3f}, \"probe_gbs\": {:.3f}, \"activations\": \"{}\", "
          "\"seqs\": {}}}{}\n",
          name, bytes, params, bpw, kv_type, r.kv_bytes, r.threads, r.test, r.mean, r.stddev,
          peak_mib, r.stream_gbs, probe.contains(r.threads) ? probe[r.threads] : 0.0, activations,
          r.seqs, i + 1 < rows.size() ? "," : "");
    }
    fmt::print("]\n");
  }
  return 0;
}
