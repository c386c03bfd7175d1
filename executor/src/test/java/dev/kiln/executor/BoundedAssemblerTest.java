package dev.kiln.executor;

import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import io.aeron.protocol.DataHeaderFlyweight;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Fragmented control messages are assembled only up to what their session may send. */
class BoundedAssemblerTest {

    private final List<Integer> delivered = new ArrayList<>();
    private final List<Integer> dropped = new ArrayList<>();
    private final UnsafeBuffer frame = new UnsafeBuffer(new byte[256 * 1024]);
    private final Header header = new Header(0, 16);
    /** Where each session's next fragment goes in its term: Aeron's assembler checks that fragments follow on. */
    private final java.util.Map<Integer, Integer> termOffsets = new java.util.HashMap<>();

    /** Sessions 1 and 2 trusted up to 10,000 bytes, others up to 1,000; at most 2 assembling at once. */
    private final BoundedAssembler assembler = new BoundedAssembler((b, o, l, h) -> delivered.add(l),
            session -> session == 1 || session == 2, 10_000, 1_000, 2, dropped::add);

    /** Feeds one fragment of {@code length} bytes with the given flags from a session. */
    private void fragment(int session, byte flags, int length) {
        int at = (flags & FrameDescriptor.BEGIN_FRAG_FLAG) != 0 ? 0 : termOffsets.getOrDefault(session, 0);
        int frameLength = DataHeaderFlyweight.HEADER_LENGTH + length;
        termOffsets.put(session, at + org.agrona.BitUtil.align(frameLength, FrameDescriptor.FRAME_ALIGNMENT));
        DataHeaderFlyweight h = new DataHeaderFlyweight();
        h.wrap(frame, at, frameLength);
        h.sessionId(session);
        h.termOffset(at);
        h.frameLength(frameLength);
        h.flags(flags);
        header.buffer(frame);
        header.offset(at);
        assembler.onFragment(frame, at + DataHeaderFlyweight.HEADER_LENGTH, length, header);
    }

    /** Sends a message of {@code parts} fragments of {@code size} bytes. */
    private void message(int session, int parts, int size) {
        for (int i = 0; i < parts; i++) {
            byte flags = 0;
            if (i == 0) {
                flags |= FrameDescriptor.BEGIN_FRAG_FLAG;
            }
            if (i == parts - 1) {
                flags |= FrameDescriptor.END_FRAG_FLAG;
            }
            fragment(session, flags, size);
        }
    }

    @Test
    void aMessageWithinItsSessionsLimitIsDelivered() {
        message(7, 2, 400);
        message(1, 5, 1_000);
        assertEquals(List.of(800, 5_000), delivered);
        assertEquals(List.of(), dropped);
    }

    @Test
    void anUntrustedSessionCannotMakeItAssembleMoreThanItsLimit() {
        message(7, 100, 1_000); // 100 kB from a session that may send 1 kB: never buffered whole
        assertEquals(List.of(), delivered);
        assertEquals(List.of(7), dropped, "dropped once, the rest of the message ignored");
        message(7, 1, 100);
        assertEquals(List.of(100), delivered, "the session's next message is read again");
        message(1, 20, 1_000);
        assertEquals(List.of(100), delivered, "a trusted session is bounded too");
        assertEquals(List.of(7, 1), dropped);
    }

    @Test
    void atMostSoManySessionsAssembleAtOnce() {
        fragment(7, FrameDescriptor.BEGIN_FRAG_FLAG, 100);
        fragment(8, FrameDescriptor.BEGIN_FRAG_FLAG, 100);
        fragment(9, FrameDescriptor.BEGIN_FRAG_FLAG, 100); // a third one waits its turn: dropped
        assertEquals(List.of(9), dropped);
        fragment(9, FrameDescriptor.END_FRAG_FLAG, 100);
        fragment(7, FrameDescriptor.END_FRAG_FLAG, 100);
        assertEquals(List.of(200), delivered);
        assembler.sessionGone(8); // its stream went away mid-message: its slot is free again
        message(9, 2, 100);
        assertEquals(List.of(200, 200), delivered);
    }

    @Test
    void unfragmentedMessagesPassAsTheyAre() {
        fragment(7, FrameDescriptor.UNFRAGMENTED, 1_400);
        assertEquals(List.of(1_400), delivered);
    }
}
