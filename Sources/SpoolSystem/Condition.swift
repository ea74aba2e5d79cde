#if canImport(Glibc)
import Glibc
#endif

/// A mutex with a condition variable: for threads that wait for one another's work.
public final class Condition: @unchecked Sendable {
    fileprivate let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// A condition variable of its own on this mutex: for a thread that waits for
    /// its own turn, so that waking it does not wake every other waiter too.
    public final class Signal: @unchecked Sendable {
        private let owner: Condition
        private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        init(_ owner: Condition) {
            self.owner = owner
            pthread_cond_init(cond, nil)
        }

        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }

        /// Call with the owner's lock held; returns with it held again.
        public func wait() { pthread_cond_wait(cond, owner.mutex) }
        /// Call with the owner's lock held.
        public func signal() { pthread_cond_signal(cond) }
    }

    public func makeSignal() -> Signal { Signal(self) }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    /// Call with the lock held; returns with it held again.
    public func wait() { pthread_cond_wait(cond, mutex) }
    public func broadcast() { pthread_cond_broadcast(cond) }
}
