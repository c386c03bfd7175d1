package dev.kiln.transport;

import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The debug wrapper: a tensor view kept past its release fails loudly instead of reading later data. */
class CheckedViewsChannelTest {

    @TempDir
    Path dir;

    private Channel channel(int slots) throws IOException {
        return new CheckedViewsChannel(ShmChannel.create(ShmChannelTest.spec(slots, 1, 4096), dir, "checked",
                new ValueCodec(), true, new Waker(), InProcessChannelTest.wakers(1)));
    }

    @Test
    void aViewIsUsableUntilReleaseAndClosedAfter() throws IOException {
        try (Channel ch = channel(2)) {
            assertTrue(ch.offer(0, Tensor.of(new float[] {1, 2, 3}, 3)));
            Tensor view = assertInstanceOf(Tensor.class, ch.poll(0, 0));
            assertArrayEquals(new float[] {1, 2, 3}, view.toFloatArray());
            ch.release(0, 0);
            IllegalStateException e = assertThrows(IllegalStateException.class, view::toFloatArray);
            assertTrue(e.getMessage().contains("closed"), e.getMessage());
            // the slot goes on working: the next values arrive whole
            for (long seq = 1; seq < 6; seq++) {
                assertTrue(ch.offer(seq, Tensor.of(new float[] {seq, -seq}, 2)));
                Tensor t = (Tensor) ch.poll(0, seq);
                assertArrayEquals(new float[] {seq, -seq}, t.toFloatArray());
                ch.release(0, seq);
            }
        }
    }

    @Test
    void tensorsInsideArraysAreCheckedAndOtherValuesPassThrough() throws IOException {
        try (Channel ch = channel(2)) {
            assertTrue(ch.offer(0, new Object[] {"x", Tensor.of(new int[] {7}, 1)}));
            Object[] read = (Object[]) ch.poll(0, 0);
            assertEquals("x", read[0]);
            Tensor inside = (Tensor) read[1];
            assertArrayEquals(new int[] {7}, inside.toIntArray());
            ch.release(0, 0);
            assertThrows(IllegalStateException.class, inside::toIntArray);
            assertTrue(ch.offer(1, "plain"));
            assertSame(Channel.NOT_READY, ch.poll(0, 2));
            assertEquals("plain", ch.poll(0, 1));
            ch.release(0, 1);
        }
    }

    @Test
    void closingTheChannelClosesViewsStillOut() throws IOException {
        Channel ch = channel(2);
        assertTrue(ch.offer(0, Tensor.of(new long[] {1, 2}, 2)));
        Tensor view = (Tensor) ch.poll(0, 0);
        ch.close();
        assertThrows(IllegalStateException.class, view::toLongArray);
    }
}
