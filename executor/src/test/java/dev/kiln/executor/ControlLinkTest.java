package dev.kiln.executor;

import dev.kiln.ControlStats;
import dev.kiln.transport.JoinHandshake;
import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One authenticated control stream over Aeron IPC: what one end sends the other accepts once, in order; a
 * forged, replayed or altered frame is dropped and counted; a message larger than a frame crosses in chunks up
 * to the receiver's limit.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ControlLinkTest {

    @TempDir
    Path tmp;

    private MediaDriver driver;
    private Aeron aeron;
    private ExclusivePublication publication;
    private Subscription subscription;
    private final ControlCounters senderCounts = new ControlCounters();
    private final ControlCounters receiverCounts = new ControlCounters();
    private static final byte[] A = key(1);
    private static final byte[] B = key(2);

    private static byte[] key(int seed) {
        byte[] k = new byte[32];
        Arrays.fill(k, (byte) seed);
        return k;
    }

    @BeforeEach
    void setUp() {
        driver = MediaDriver.launchEmbedded(new MediaDriver.Context().aeronDirectoryName(tmp.resolve("aeron").toString())
                .dirDeleteOnStart(true).dirDeleteOnShutdown(true).threadingMode(ThreadingMode.SHARED)
                .termBufferSparseFile(true));
        aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
        subscription = aeron.addSubscription(ControlPlane.IPC, 7);
        publication = aeron.addExclusivePublication(ControlPlane.IPC, 7);
    }

    @AfterEach
    void tearDown() {
        aeron.close();
        driver.close();
    }

    private ControlLink sender(long limit) {
        return new ControlLink(publication, new JoinHandshake.Keys(A, B), limit, senderCounts,
                new PeerWarnings(System.getLogger("test"), "sender"), "receiver");
    }

    private ControlLink receiver(long limit) {
        return new ControlLink(publication, new JoinHandshake.Keys(B, A), limit, receiverCounts,
                new PeerWarnings(System.getLogger("test"), "receiver"), "sender");
    }

    /** The frames on the stream, as a receiver or an eavesdropper sees them. */
    private List<byte[]> frames(int count) {
        List<byte[]> frames = new ArrayList<>();
        io.aeron.FragmentAssembler assembler = new io.aeron.FragmentAssembler((buffer, offset, length, header) -> {
            byte[] f = new byte[length];
            buffer.getBytes(offset, f);
            frames.add(f);
        });
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (frames.size() < count && System.nanoTime() < deadline) {
            subscription.poll(assembler, 10);
        }
        assertEquals(count, frames.size(), "frames on the stream");
        return frames;
    }

    private static Message feed(ControlLink link, byte[] frame) {
        return link.receive(new UnsafeBuffer(frame), 0, frame.length);
    }

    @Test
    void messagesAreAcceptedOnceInOrderAndEverythingElseIsDroppedAndCounted() {
        ControlLink out = sender(1 << 20);
        ControlLink in = receiver(1 << 20);
        assertNull(out.send(new Message.Start(1, 10), TimeUnit.SECONDS.toNanos(5)));
        assertNull(out.send(new Message.StopActor(3), TimeUnit.SECONDS.toNanos(5)));
        List<byte[]> frames = frames(2);
        assertEquals(new Message.Start(1, 10), feed(in, frames.get(0)));
        assertEquals(new Message.StopActor(3), feed(in, frames.get(1)));
        assertEquals(ControlStats.NONE, receiverCounts.snapshot());

        assertNull(feed(in, frames.get(0)), "replayed");
        assertNull(feed(in, frames.get(1)), "replayed");
        for (int at : new int[] {2, 8, 12, frames.get(1).length - 1}) {
            byte[] altered = frames.get(1).clone();
            altered[at] ^= 0x01;
            assertNull(feed(in, altered), "altered at " + at);
        }
        byte[] forged = Arrays.copyOf(ControlCodec.encode(new Message.Shutdown()), 8 + 8 + ControlLink.MAC_BYTES);
        new UnsafeBuffer(forged).putLong(8, 1000, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertNull(feed(in, forged), "no key, no MAC");
        assertNull(feed(in, ControlCodec.encode(new Message.Challenge(new byte[32], new byte[32]))), "not after a join");
        assertNull(feed(in, new byte[5]), "too short");
        ControlStats counts = receiverCounts.snapshot();
        assertEquals(2, counts.replayed());
        assertEquals(4 + 1 + 1, counts.forged(), counts.toString());
        assertEquals(1, counts.malformed());
        // and the link still accepts what comes next
        assertNull(out.send(new Message.Shutdown(), TimeUnit.SECONDS.toNanos(5)));
        assertInstanceOf(Message.Shutdown.class, feed(in, frames(1).getFirst()));
    }

    @Test
    void aMessageLargerThanAFrameCrossesInChunksUpToTheReceiversLimit() {
        byte[] arguments = new byte[9 << 20];
        for (int i = 0; i < arguments.length; i++) {
            arguments[i] = (byte) (i * 31);
        }
        ControlLink out = sender(16 << 20);
        assertNull(out.send(new Message.Call(5, 1, 1, 0, new byte[] {1}, arguments), TimeUnit.SECONDS.toNanos(10)));
        List<byte[]> frames = frames(3);
        ControlLink in = receiver(16 << 20);
        assertNull(feed(in, frames.get(0)), "first chunk");
        assertNull(feed(in, frames.get(1)), "second chunk");
        Message.Call call = (Message.Call) feed(in, frames.get(2));
        assertArrayEquals(arguments, call.arguments());

        ControlLink small = receiver(1 << 20);
        for (byte[] f : frames) {
            assertNull(feed(small, f));
        }
        assertTrue(receiverCounts.snapshot().malformed() >= 1, "chunks past the limit are dropped");
        ControlLink outOfOrder = receiver(16 << 20);
        assertNull(feed(outOfOrder, frames.get(1)));
        assertNull(feed(outOfOrder, frames.get(2)));
        assertTrue(receiverCounts.snapshot().malformed() >= 2);
    }
}
