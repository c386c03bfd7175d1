package dev.kiln.jcstress;

import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * A batch release against a writer about to sleep on a full channel: the reader releases the one slot (one release
 * store, one fence, one check of the writer's announcement); the writer announces that it sleeps, then re-checks
 * whether the slot is free. r1: the re-check saw the slot free; r2: the announcement is still up afterwards. A writer
 * that missed the release must have been woken.
 */
@JCStressTest
@Description("InProcessChannel.release vs Waker.arm + isFree: no lost wake-up")
@Outcome(id = "1, 0", expect = ACCEPTABLE, desc = "the writer saw the slot free, and was woken too")
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the writer saw the slot free; the release came first")
@Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "the writer missed the release, and the release woke it")
@Outcome(id = "0, 1", expect = FORBIDDEN, desc = "lost wake-up: the writer missed the release and sleeps on")
@State
public class ReleaseWakeUpTest {

    private final Waker writerWaker = new Waker();
    private final InProcessChannel channel = Channels.inProcess(1, writerWaker, new Waker());

    /** Fills the one slot. */
    public ReleaseWakeUpTest() {
        channel.offer(0, "value");
    }

    /** The reader, done with the batch that ends at sequence 0. */
    @Actor
    public void reader() {
        channel.release(0, 0);
    }

    /** The writer that is about to park. */
    @Actor
    public void writer(II_Result r) {
        writerWaker.arm();
        r.r1 = channel.isFree(1) ? 1 : 0;
    }

    /** Whether the writer's announcement survived, that is nobody woke it. */
    @Arbiter
    public void after(II_Result r) {
        r.r2 = writerWaker.isArmed() ? 1 : 0;
    }
}
