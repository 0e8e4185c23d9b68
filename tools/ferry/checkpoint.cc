// checkpoint, restore: a container to one bundle file on this machine, and
// back onto a host.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "common/byte_stream.h"
#include "common/error.h"
#include "common/fd.h"
#include "protocol/capnp_text.h"
#include "tools/cli_util.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/options.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

namespace {

std::string randomToken() {
  std::random_device rd;
  std::string t(32, '\0');
  for (auto& c : t) c = static_cast<char>(rd() & 0xff);
  return t;
}

capnp::Data::Reader dataOf(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

struct CheckpointOptions {
  std::string name, file, listen = "127.0.0.1";
  bool leave_running = false;
  int level = 3;
};

// Receives the bundle into FILE.partial on a thread, renamed to FILE once
// whole; a failure removes the partial file and rejects the stream.
int checkpoint(Session& s, const CheckpointOptions& o) {
  if (s.keys_dir.empty() && o.listen.rfind("127.", 0) != 0)
    throw UsageError("without --keys the bundle is received on a loopback address only");
  std::filesystem::path target = std::filesystem::absolute(o.file);
  std::filesystem::path partial = target.string() + ".partial";
  std::string token = randomToken();
  std::atomic<bool> cancel{false};
  proto::StreamOptions so = s.streamOptions();
  so.cancel = &cancel;
  proto::ChunkReceiver rx(s.ctx, "tcp://" + o.listen + ":0", token, "ferry CLI", so);
  std::string endpoint = rx.endpoint();
  std::optional<Error> receive_error;
  // The file is created before anything is asked of the cluster: a path
  // that cannot be written fails here, with the container untouched.
  if (std::filesystem::exists(target)) {
    throw Error(ErrorCategory::kInvalidInput,
                target.string() + " exists; remove it or name another file");
  }
  UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throwErrno("creating " + partial.string());
  std::thread receiver([&] {
    try {
      FdSink out(fd.get(), "writing " + partial.string());
      copyAll(rx, out);
      if (::fsync(fd.get()) != 0) throwErrno("writing " + partial.string());
      std::filesystem::rename(partial, target);
      rx.accept();
    } catch (const Error& e) {
      receive_error = e;
      ::unlink(partial.c_str());
      rx.reject(e);
    } catch (const std::exception& e) {
      receive_error = Error(ErrorCategory::kPermanent, e.what());
      ::unlink(partial.c_str());
      rx.reject(*receive_error);
    }
  });
  ProgressLine line(onTerminal() && !s.json_out);
  std::unique_ptr<proto::Decoded> r;
  try {
    r = s.call(
        [&](proto::Message::Builder m) {
          auto c = m.initCheckpoint();
          c.setContainer(o.name);
          c.setEndpoint(endpoint);
          c.setToken(dataOf(token));
          if (so.own_keys) c.setServerKey(so.own_keys->public_key);
          c.setLeaveRunning(o.leave_running);
          c.setLevel(o.level);
        },
        [&](proto::Progress::Reader p) {
          line.show(text(p.getPhase()), p.getBytesDone(), p.getBytesTotal(), "");
        });
  } catch (...) {
    cancel = true;
    receiver.join();
    ::unlink(partial.c_str());
    throw;
  }
  receiver.join();
  line.clear();
  if (receive_error) throw *receive_error;
  auto f = r->root<proto::Message>().getMigration();
  if (s.json_out) {
    printJson({{"container", o.name},
               {"file", target.string()},
               {"bytes_raw", f.getBytesRaw()},
               {"bytes_wire", f.getBytesWire()},
               {"frozen_ms", f.getDowntimeMs()},
               {"left_running", o.leave_running}});
  } else {
    std::printf("checkpoint of %s written to %s (%s; frozen %llu ms); %s\n", o.name.c_str(),
                target.c_str(), formatBytes(f.getBytesWire()).c_str(),
                static_cast<unsigned long long>(f.getDowntimeMs()),
                o.leave_running ? "it runs on" : "it was removed from its host");
  }
  return 0;
}

struct RestoreOptions {
  std::string file, host, name;
  std::vector<std::string> ignore;
  bool replace = false;
};

int restore(Session& s, const RestoreOptions& o) {
  sendFile(
      s, o.file,
      [&](proto::Message::Builder m) {
        auto i = m.initImportFile();
        i.setHost(o.host);
        i.setKind(proto::Message::ImportFile::Kind::CHECKPOINT);
        i.setName(o.name);
        i.setReplaceVolumes(o.replace);
        auto il = i.initIgnore(static_cast<unsigned>(o.ignore.size()));
        for (size_t k = 0; k < o.ignore.size(); ++k)
          il.set(static_cast<unsigned>(k), o.ignore[k]);
      },
      "restore on " + o.host);
  if (s.json_out)
    printJson({{"restored", o.file}, {"host", o.host}, {"name", o.name}});
  else
    std::printf("restored %s on %s\n", o.file.c_str(), o.host.c_str());
  return 0;
}

}  // namespace

void addCheckpointCommands(CLI::App& app, Invocation& inv) {
  auto c = std::make_shared<CheckpointOptions>();
  CLI::App* cp = app.add_subcommand(
      "checkpoint",
      "write a container's checkpoint as one bundle FILE here (it is frozen meanwhile); it is "
      "then removed from its host, or resumed with --leave-running. Nothing is lost on failure: "
      "it runs again and no partial FILE is left.");
  cp->add_option("name", c->name, "the container")->required();
  cp->add_option("--export", c->file, "the bundle file to write")->required();
  cp->add_flag("--leave-running", c->leave_running, "resume it instead of removing it");
  cp->add_option("--compress-level", c->level, "zstd level, 0 (raw) to 22 (default 3)")->check(countIn(0, 22));
  cp->add_option("--listen", c->listen,
                 "where the agent reaches this machine (default 127.0.0.1)")
      ->type_name("ADDR");
  setAction(cp, inv, [&inv, c] { return checkpoint(inv.session, *c); });

  auto r = std::make_shared<RestoreOptions>();
  CLI::App* rs = app.add_subcommand(
      "restore", "restore a bundle on a host (its recorded host metadata is checked first)");
  rs->add_option("--import", r->file, "the bundle file")->required();
  rs->add_option("--host", r->host, "the host")->required();
  rs->add_option("--name", r->name, "restore it under this name");
  rs->add_option("--ignore", r->ignore, "override one compatibility refusal; repeatable")
      ->type_name("CHECK")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  rs->add_flag("--replace-volumes", r->replace, "replace volumes of the same name on the host");
  setAction(
      rs, inv, [&inv, r] { return restore(inv.session, *r); },
      [r] {
        if (!r->name.empty()) checkName(r->name, "container name");
      });
}

}  // namespace ferry::cli
