package dev.kiln.bench;

import com.lmax.disruptor.AlertException;
import com.lmax.disruptor.BlockingWaitStrategy;
import com.lmax.disruptor.BusySpinWaitStrategy;
import com.lmax.disruptor.EventHandler;
import com.lmax.disruptor.RingBuffer;
import com.lmax.disruptor.SequenceBarrier;
import com.lmax.disruptor.SleepingWaitStrategy;
import com.lmax.disruptor.TimeoutException;
import com.lmax.disruptor.WaitStrategy;
import com.lmax.disruptor.dsl.Disruptor;
import com.lmax.disruptor.dsl.EventHandlerGroup;
import com.lmax.disruptor.dsl.ProducerType;
import dev.kiln.compiler.IdleMode;
import dev.kiln.tensor.Tensor;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The in-process floor for a hop: an LMAX Disruptor ring buffer with the same handler chain,
 * one handler thread per actor. A chain is {@code handleEventsWith(h0).then(h1)...}, each
 * handler replacing the event's value with its step; a scatter is four handlers on the same
 * event, each writing its own result field. The JMH thread publishes the input and waits on a
 * barrier behind the last handlers. Wait strategy per idle mode: {@code SPIN} busy-spins,
 * {@code BACKOFF} is the {@link SleepingWaitStrategy} (spin, yield, then 100 ns parks: close
 * to Kiln's BACKOFF), {@code BLOCKING} is the {@link BlockingWaitStrategy}. Allocates nothing
 * per execution: events are preallocated and reused.
 */
final class DisruptorPath extends Path {

    /** One slot of the ring: the input, the result(s), reused from execution to execution. */
    static final class Event {
        long x;
        final long[] args = new long[8];
        Tensor tensor;
        final long[] out = new long[4];
    }

    private final Disruptor<Event> disruptor;
    private final RingBuffer<Event> ring;
    private final SequenceBarrier done;
    private long finished;

    DisruptorPath(Scenario scenario, IdleMode idle, int window) {
        super(scenario, idle, window);
        int size = Math.max(16, Integer.highestOneBit(window - 1) << 1);
        WaitStrategy wait = switch (idle) {
            case SPIN -> new BusySpinWaitStrategy();
            case BACKOFF -> new SleepingWaitStrategy();
            case BLOCKING -> new BlockingWaitStrategy();
        };
        AtomicInteger threads = new AtomicInteger();
        this.disruptor = new Disruptor<>(Event::new, size,
                r -> Thread.ofPlatform().name("disruptor-stage-" + threads.getAndIncrement()).daemon(true).unstarted(r),
                ProducerType.SINGLE, wait);
        Stage[] stages = new Stage[scenario.actors()];
        for (int i = 0; i < stages.length; i++) {
            stages[i] = new Stage(i);
        }
        EventHandlerGroup<Event> last = switch (scenario) {
            case SINGLE -> disruptor.handleEventsWith(step(stages[0]));
            case CHAIN4 -> disruptor.handleEventsWith(step(stages[0])).then(step(stages[1])).then(step(stages[2]))
                    .then(step(stages[3]));
            case SCATTER4 -> disruptor.handleEventsWith(scatter(stages[0], 0), scatter(stages[1], 1),
                    scatter(stages[2], 2), scatter(stages[3], 3));
            case ARGS8 -> disruptor.handleEventsWith((e, seq, endOfBatch) -> e.x = stages[0].mix8(e.args[0], e.args[1],
                    e.args[2], e.args[3], e.args[4], e.args[5], e.args[6], e.args[7]));
            case TENSOR_4K, TENSOR_1M, TENSOR_64M ->
                    disruptor.handleEventsWith((e, seq, endOfBatch) -> e.x = stages[0].touch(e.tensor));
        };
        this.done = last.asSequenceBarrier();
        this.ring = disruptor.start();
    }

    private static EventHandler<Event> step(Stage stage) {
        return (e, seq, endOfBatch) -> e.x = stage.step(e.x);
    }

    private static EventHandler<Event> scatter(Stage stage, int lane) {
        return (e, seq, endOfBatch) -> e.out[lane] = stage.step(e.x);
    }

    @Override
    void submit(long x) {
        long seq = ring.next();
        Event e = ring.get(seq);
        e.x = x;
        if (scenario == Scenario.ARGS8) {
            for (int i = 0; i < 8; i++) {
                e.args[i] = Scenario.arg(x, i);
            }
        }
        e.tensor = tensor;
        ring.publish(seq);
    }

    @Override
    long next() {
        long seq = finished++;
        try {
            done.waitFor(seq);
        } catch (AlertException | InterruptedException | TimeoutException e) {
            throw new IllegalStateException("waiting for the Disruptor's event " + seq, e);
        }
        Event e = ring.get(seq);
        return scenario == Scenario.SCATTER4 ? e.out[0] + e.out[1] + e.out[2] + e.out[3] : e.x;
    }

    @Override
    public void close() {
        disruptor.halt();
        super.close();
    }
}
