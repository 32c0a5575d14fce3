#include "reactor/reactor.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <new>

namespace framed::reactor {

class Reactor::WakeHandler final : public IoHandler {
 public:
  explicit WakeHandler(Reactor& reactor) : reactor_(reactor) {}
  void on_io(std::uint8_t /*tag*/, std::int32_t result, std::uint32_t /*flags*/) override {
    // -ECANCELED only happens at destruction; anything else re-arms.
    if (result == -ECANCELED) return;
    reactor_.arm_wake_read();
    reactor_.run_posted();
  }

 private:
  Reactor& reactor_;
};

std::unique_ptr<Reactor> Reactor::create(std::unique_ptr<Backend> backend, int* error) {
  base::UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) {
    *error = -errno;
    return nullptr;
  }
  return std::unique_ptr<Reactor>(new Reactor(std::move(backend), std::move(wake)));  // private ctor
}

Reactor::Reactor(std::unique_ptr<Backend> backend, base::UniqueFd wake_fd)
    : backend_(std::move(backend)), backend_name_(backend_->name()), wake_handler_(std::make_unique<WakeHandler>(*this)), wake_fd_(std::move(wake_fd)) {
  wake_token_ = register_handler(*wake_handler_);
  arm_wake_read();
}

Reactor::~Reactor() {
  shut_down_backend();
  unregister_handler(wake_token_);
}

void Reactor::shut_down_backend() noexcept { backend_.reset(); }

void Reactor::arm_wake_read() {
  read(wake_token_, 0, wake_fd_.get(), &wake_value_, sizeof wake_value_);
}

void Reactor::post(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard lock(posted_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  // One write per batch: a non-empty queue already has a wake-up on its way.
  if (was_empty) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_.get(), &one, sizeof one);
  }
}

void Reactor::stop_from_any_thread() {
  post([this] { stop(); });
}

void Reactor::run_posted() {
  {
    std::lock_guard lock(posted_mutex_);
    running_posted_.swap(posted_);
  }
  for (auto& fn : running_posted_) run_guarded(fn);
  running_posted_.clear();
}

TimerId Reactor::add_timer(base::TimePoint deadline, std::function<void()> fn) {
  std::uint32_t index;
  if (!free_timer_slots_.empty()) {
    index = free_timer_slots_.back();
    free_timer_slots_.pop_back();
  } else {
    index = static_cast<std::uint32_t>(timer_slots_.size());
    timer_slots_.emplace_back();
  }
  TimerSlot& slot = timer_slots_[index];
  slot.fn = std::move(fn);
  slot.armed = true;
  ++slot.generation;
  const TimerId id = (TimerId{slot.generation} << 32) | (TimerId{index} + 1);
  timer_heap_.push(Timer{deadline, id});
  return id;
}

Reactor::TimerSlot* Reactor::armed_timer(TimerId id) noexcept {
  const std::uint32_t index = timer_index(id);
  if (index >= timer_slots_.size()) return nullptr;
  TimerSlot& slot = timer_slots_[index];
  return slot.armed && slot.generation == static_cast<std::uint32_t>(id >> 32) ? &slot : nullptr;
}

void Reactor::release_timer(TimerId id) {
  TimerSlot& slot = timer_slots_[timer_index(id)];
  slot.armed = false;
  slot.fn = nullptr;  // what it captured goes now, not when the slot is reused
  free_timer_slots_.push_back(timer_index(id));
}

void Reactor::cancel_timer(TimerId id) {
  if (armed_timer(id) != nullptr) release_timer(id);
}

void Reactor::run_due_timers() {
  while (!timer_heap_.empty() && timer_heap_.top().deadline <= now()) {
    const TimerId id = timer_heap_.top().id;
    timer_heap_.pop();
    TimerSlot* slot = armed_timer(id);
    if (slot == nullptr) continue;  // cancelled
    std::function<void()> fn = std::move(slot->fn);
    release_timer(id);
    run_guarded(fn);
  }
}

void Reactor::run_guarded(std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    // What that function was doing is dropped; the loop goes on.
    ++allocation_failures_;
  }
}

void Reactor::run_deferred() {
  // A deferred function may defer more; loop until none are left.
  // Two vectors swapped back and forth keep their capacity: deferring
  // allocates nothing in the steady state.
  while (!deferred_.empty()) {
    running_deferred_.swap(deferred_);
    for (auto& fn : running_deferred_) run_guarded(fn);
    running_deferred_.clear();
  }
}

IoToken Reactor::register_handler(IoHandler& handler) {
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[slot];
  // Generations are 24 bits wide in user_data and never 0.
  s.generation = (s.generation % 0xFFFFFF) + 1;
  s.handler = &handler;
  return IoToken{slot, s.generation};
}

void Reactor::unregister_handler(IoToken token) {
  if (!token.valid() || token.slot >= slots_.size()) return;
  Slot& s = slots_[token.slot];
  if (s.generation != token.generation || s.handler == nullptr) return;
  s.handler = nullptr;
  free_slots_.push_back(token.slot);
}

void Reactor::on_completion(const Completion& completion) {
  const auto slot = static_cast<std::uint32_t>(completion.user_data >> 32);
  const auto generation = static_cast<std::uint32_t>((completion.user_data >> 8) & 0xFFFFFF);
  const auto tag = static_cast<std::uint8_t>(completion.user_data & 0xFF);
  if (slot >= slots_.size()) return;
  const Slot& s = slots_[slot];
  // A late completion for a handler that is gone, or a slot that was reused.
  if (s.handler == nullptr || s.generation != generation) return;
  try {
    s.handler->on_io(tag, completion.result, completion.flags);
  } catch (const std::bad_alloc&) {
    ++allocation_failures_;
    // The handler may have unregistered itself before the throw.
    const Slot& after = slots_[slot];
    if (after.handler != nullptr && after.generation == generation) after.handler->on_allocation_failure();
  }
}

void Reactor::run() {
  running_ = true;
  while (running_) {
    std::optional<std::chrono::nanoseconds> timeout;
    // Drop cancelled timers at the top so they do not shorten the wait.
    while (!timer_heap_.empty() && armed_timer(timer_heap_.top().id) == nullptr) timer_heap_.pop();
    if (!timer_heap_.empty()) {
      const auto wait = timer_heap_.top().deadline - base::Clock::now();
      timeout = wait.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(wait)
                                 : std::chrono::nanoseconds{0};
    }
    now_is_fresh_ = false;
    backend_->poll(timeout, *this);
    now_is_fresh_ = false;
    (void)now();  // timers compare against this batch's time
    run_deferred();
    run_due_timers();
    run_deferred();
  }
}

}  // namespace framed::reactor
