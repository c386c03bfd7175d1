package dev.kiln.jcstress;

import dev.kiln.transport.Channel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * A batch of two values published with one store: a reader that sees the second value sees the first, and both are
 * the values written (never a stale or half-published slot). r1: sequence 1 (1 = its value, 0 = not published,
 * -1 = something else); r2: sequence 0, read after.
 */
@JCStressTest
@Description("InProcessChannel.write x2 + publish: a batch is seen whole and in order")
@Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "the batch was not published yet")
@Outcome(id = "0, 1", expect = ACCEPTABLE, desc = "published between the two reads")
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the whole batch")
@Outcome(id = "1, 0", expect = FORBIDDEN, desc = "saw the second value without the first")
@Outcome(expect = FORBIDDEN, desc = "a value other than the one written")
@State
public class BatchVisibilityTest {

    private static final Object FIRST = "first";
    private static final Object SECOND = "second";
    private final InProcessChannel channel = Channels.inProcess(2, new Waker(), new Waker());

    /** Writes a batch of two and publishes once. */
    @Actor
    public void writer() {
        channel.write(0, FIRST);
        channel.write(1, SECOND);
        channel.publish();
    }

    /** Reads the second value, then the first. */
    @Actor
    public void reader(II_Result r) {
        r.r1 = code(channel.poll(0, 1), SECOND);
        r.r2 = code(channel.poll(0, 0), FIRST);
    }

    private static int code(Object seen, Object expected) {
        return seen == Channel.NOT_READY ? 0 : seen == expected ? 1 : -1;
    }
}
