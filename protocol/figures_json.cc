#include "protocol/figures_json.h"

#include <capnp/compat/json.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace ferry::proto {

namespace {

// 64-bit integers as JSON numbers, which is what every reader of ours (and
// jq, and JavaScript) expects; the codec's default writes them as strings.
// Read from either.
template <typename T>
class NumberHandler final : public capnp::JsonCodec::Handler<T> {
 public:
  void encode(const capnp::JsonCodec&, T input, capnp::JsonValue::Builder out) const override {
    out.setNumber(static_cast<double>(input));
  }
  T decode(const capnp::JsonCodec&, capnp::JsonValue::Reader in) const override {
    if (in.isNumber()) {
      double d = in.getNumber();
      // 2^64 is exactly representable; every double below it fits in T.
      KJ_REQUIRE(d == std::floor(d) && d >= static_cast<double>(std::numeric_limits<T>::min()) &&
                     d < std::ldexp(1.0, std::numeric_limits<T>::digits),
                 "not a whole number in range", d);
      return static_cast<T>(d);
    }
    KJ_REQUIRE(in.isString(), "expected a number");
    kj::StringPtr s = in.getString();
    T v{};
    auto [end, ec] = std::from_chars(s.begin(), s.end(), v);
    KJ_REQUIRE(ec == std::errc() && end == s.end(), "not a whole number in range", s);
    return v;
  }
};

// Registered before first use, as the codec requires, then only read:
// encode and decode are const and keep no state.
struct Codec {
  explicit Codec(bool pretty) {
    codec.addTypeHandler(u64);
    codec.addTypeHandler(i64);
    codec.handleByAnnotation<MigrationFigures>();
    codec.setPrettyPrint(pretty);
  }
  NumberHandler<uint64_t> u64;
  NumberHandler<int64_t> i64;
  capnp::JsonCodec codec;  // after the handlers it refers to
};

const capnp::JsonCodec& codec(bool pretty) {
  static const Codec plain(false), indented(true);
  return pretty ? indented.codec : plain.codec;
}

// Empty texts and lists where the record has none, so each key is written.
void fillAbsent(capnp::DynamicStruct::Builder s) {
  for (auto field : s.getSchema().getNonUnionFields()) {
    capnp::Type t = field.getType();
    if (t.isText() && !s.has(field)) {
      s.set(field, capnp::Text::Reader(""));
    } else if (t.isList() && !s.has(field)) {
      s.init(field, 0);
    } else if (t.isList() && t.asList().getElementType().isStruct()) {
      auto list = s.get(field).as<capnp::DynamicList>();
      for (unsigned i = 0; i < list.size(); ++i) fillAbsent(list[i].as<capnp::DynamicStruct>());
    } else if (t.isStruct() && s.has(field)) {
      fillAbsent(s.get(field).as<capnp::DynamicStruct>());
    }
  }
}

std::string toStd(const kj::String& s) { return std::string(s.cStr(), s.size()); }

}  // namespace

std::string figuresJson(MigrationFigures::Reader figures, bool pretty) {
  capnp::MallocMessageBuilder message;
  message.setRoot(figures);
  auto copy = message.getRoot<MigrationFigures>();
  fillAbsent(copy);
  return toStd(codec(pretty).encode(copy.asReader()));
}

std::string figuresJson(capnp::List<MigrationFigures>::Reader list, bool pretty) {
  capnp::MallocMessageBuilder message;
  auto copy = message.getOrphanage().newOrphanCopy(list);
  for (auto f : copy.get()) fillAbsent(f);
  return toStd(codec(pretty).encode(copy.getReader()));
}

void figuresFromJson(std::string_view json, MigrationFigures::Builder out) {
  try {
    codec(false).decode(kj::ArrayPtr<const char>(json.data(), json.size()), out);
  } catch (const kj::Exception& e) {
    throw Error(ErrorCategory::kInvalidInput,
                "migration figures are not the JSON they should be: " +
                    std::string(e.getDescription().cStr()));
  }
}

FiguresRecord::FiguresRecord() : message_(std::make_unique<capnp::MallocMessageBuilder>()) {
  message_->initRoot<MigrationFigures>();
}

void FiguresRecord::addPhase(const std::string& phase, uint64_t ms) {
  auto f = get();
  auto old = f.getPhaseMs();
  auto grown =
      message_->getOrphanage().newOrphan<capnp::List<MigrationFigures::PhaseTime>>(old.size() + 1);
  auto l = grown.get();
  for (unsigned i = 0; i < old.size(); ++i) l.setWithCaveats(i, old[i]);
  l[old.size()].setPhase(phase);
  l[old.size()].setMs(ms);
  f.adoptPhaseMs(kj::mv(grown));
}

void FiguresRecord::setWarnings(const std::vector<std::string>& warnings) {
  auto w = get().initWarnings(static_cast<unsigned>(warnings.size()));
  for (unsigned i = 0; i < warnings.size(); ++i) w.set(i, warnings[i]);
}

}  // namespace ferry::proto
