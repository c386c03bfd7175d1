package dev.kiln;

import dev.kiln.executor.ActorHandle;
import dev.kiln.graph.ActorRef;

import java.io.Serializable;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The dynamic per-call path ({@code Kiln.call}): numbers each call on its actor and hands it to the actor's handle,
 * which queues it in the actor's mailbox in this JVM or sends it to the actor's worker JVM.
 *
 * <p>Thread-safe: any thread may call.
 */
final class DynamicCalls {

    private final ActorRegistry registry;
    private final Map<Integer, AtomicLong> callCounters = new ConcurrentHashMap<>();

    /** @param registry the runtime's actors */
    DynamicCalls(ActorRegistry registry) {
        this.registry = registry;
    }

    /**
     * Calls {@code method} on the actor of {@code ref}.
     *
     * @param ref    the actor
     * @param method the {@code Method0..Method8}
     * @param arity  its argument count
     * @param args   the arguments
     * @param <R>    the result type
     * @return the future of the result
     * @throws IllegalArgumentException if the actor belongs to another runtime, or the call cannot be sent
     */
    <R> CompletableFuture<R> dispatch(ActorRef<?> ref, Serializable method, int arity, Object[] args) {
        ActorHandle a = registry.handle(ref);
        long number = callCounters.computeIfAbsent(ref.id(), k -> new AtomicLong()).getAndIncrement();
        return a.call(method, arity, args, number);
    }
}
