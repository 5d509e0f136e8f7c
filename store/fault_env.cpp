// Compiled with -fno-rtti: Debian's libleveldb is built without RTTI, so a
// subclass of leveldb::EnvWrapper compiled with RTTI would need typeinfo the
// library does not export.
#include "store/fault_env.hpp"

#include <leveldb/env.h>

namespace syncmesh::store {

class faulty_file final : public leveldb::WritableFile {
public:
  faulty_file(fault_injection& ctl, leveldb::WritableFile* base) : ctl_(ctl), base_(base) {}

  leveldb::Status Append(const leveldb::Slice& data) override {
    if (ctl_.fail_writes_) {
      ++ctl_.injected_;
      return leveldb::Status::IOError("injected write failure");
    }
    return base_->Append(data);
  }
  leveldb::Status Close() override { return base_->Close(); }
  leveldb::Status Flush() override {
    if (ctl_.fail_writes_) {
      ++ctl_.injected_;
      return leveldb::Status::IOError("injected write failure");
    }
    return base_->Flush();
  }
  leveldb::Status Sync() override {
    if (ctl_.fail_syncs_) {
      ++ctl_.injected_;
      return leveldb::Status::IOError("injected sync failure");
    }
    return base_->Sync();
  }

private:
  fault_injection& ctl_;
  std::unique_ptr<leveldb::WritableFile> base_;
};

class faulty_env final : public leveldb::EnvWrapper {
public:
  faulty_env(fault_injection& ctl, leveldb::Env* base) : EnvWrapper(base), ctl_(ctl) {}

  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
    return wrap(target()->NewWritableFile(f, r), r);
  }
  leveldb::Status NewAppendableFile(const std::string& f, leveldb::WritableFile** r) override {
    return wrap(target()->NewAppendableFile(f, r), r);
  }

private:
  leveldb::Status wrap(leveldb::Status s, leveldb::WritableFile** r) {
    if (!s.ok())
      return s;
    if (ctl_.fail_creates_) {
      delete *r;
      *r = nullptr;
      ++ctl_.injected_;
      return leveldb::Status::IOError("injected file creation failure");
    }
    *r = new faulty_file(ctl_, *r);
    return s;
  }

  fault_injection& ctl_;
};

fault_injection::fault_injection(leveldb::Env* base)
  : env_(std::make_unique<faulty_env>(*this, base)) {}

fault_injection::~fault_injection() = default;

leveldb::Env* fault_injection::env() { return env_.get(); }

} // namespace syncmesh::store
