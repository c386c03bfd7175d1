package dev.kiln.jcstress;

import dev.kiln.transport.Channel;
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
 * A batch publication against a reader about to sleep: the writer writes a value and publishes it (one release store,
 * one fence, one check of the reader's announcement); the reader announces that it sleeps ({@link Waker#arm()}), then
 * re-checks the channel. r1: the re-check saw the value; r2: the announcement is still up afterwards (nobody woke the
 * reader). A reader that missed the value must have been woken.
 */
@JCStressTest
@Description("InProcessChannel.publish vs Waker.arm + poll: no lost wake-up")
@Outcome(id = "1, 0", expect = ACCEPTABLE, desc = "the reader saw the value, and was woken too")
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the reader saw the value; the publish came before its announcement")
@Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "the reader missed the value, and the publish woke it")
@Outcome(id = "0, 1", expect = FORBIDDEN, desc = "lost wake-up: the reader missed the value and sleeps on")
@State
public class PublishWakeUpTest {

    private final Waker readerWaker = new Waker();
    private final InProcessChannel channel = Channels.inProcess(2, new Waker(), readerWaker);

    /** The writer of the batch. */
    @Actor
    public void writer() {
        channel.write(0, "value");
        channel.publish();
    }

    /** The reader that is about to park. */
    @Actor
    public void reader(II_Result r) {
        readerWaker.arm();
        r.r1 = channel.poll(0, 0) == Channel.NOT_READY ? 0 : 1;
    }

    /** Whether the reader's announcement survived, that is nobody woke it. */
    @Arbiter
    public void after(II_Result r) {
        r.r2 = readerWaker.isArmed() ? 1 : 0;
    }
}
