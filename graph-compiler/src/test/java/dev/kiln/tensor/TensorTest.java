package dev.kiln.tensor;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TensorTest {

    @Test
    void arraysRoundTripForEveryDType() {
        try (Tensor f = Tensor.of(new float[] {1.5f, -2f, 3f, 4f, 5f, 6f}, 2, 3);
             Tensor d = Tensor.of(new double[] {1e300, -0.5});
             Tensor i = Tensor.of(new int[] {Integer.MIN_VALUE, 7});
             Tensor l = Tensor.of(new long[] {Long.MAX_VALUE});
             Tensor b = Tensor.of(DType.U8, new byte[] {(byte) 255, 0});
             Tensor h = Tensor.of(DType.BF16, new short[] {(short) 0x3f80})) {
            assertArrayEquals(new float[] {1.5f, -2f, 3f, 4f, 5f, 6f}, f.toFloatArray());
            assertArrayEquals(new long[] {2, 3}, f.shape());
            assertEquals(6, f.numel());
            assertEquals(24, f.byteSize());
            assertEquals(4f, f.getFloat(3));
            assertArrayEquals(new double[] {1e300, -0.5}, d.toDoubleArray());
            assertArrayEquals(new int[] {Integer.MIN_VALUE, 7}, i.toIntArray());
            assertArrayEquals(new long[] {Long.MAX_VALUE}, l.toLongArray());
            assertArrayEquals(new byte[] {(byte) 255, 0}, b.toByteArray());
            assertArrayEquals(new short[] {(short) 0x3f80}, h.toShortBits());
            assertEquals(DType.BF16, h.dtype());
        }
    }

    @Test
    void dataIsLittleEndian() {
        try (Tensor t = Tensor.of(new int[] {0x01020304})) {
            assertEquals(0x04, t.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
        }
    }

    @Test
    void byteBufferIsCopiedFromPositionToLimit() {
        ByteBuffer buf = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        buf.putInt(99).putFloat(1f).putFloat(2f).position(4);
        try (Tensor t = Tensor.of(buf, DType.F32, 2)) {
            assertArrayEquals(new float[] {1f, 2f}, t.toFloatArray());
            assertEquals(4, buf.position());
        }
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(buf, DType.F32, 3));
    }

    @Test
    void viewBorrowsAndCopyOfOwns() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(16);
            Tensor view = Tensor.view(seg, DType.I32, 2);
            view.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 1, 42);
            assertFalse(view.ownsMemory());
            Tensor copy = Tensor.copyOf(view);
            view.close(); // does nothing to borrowed memory
            assertEquals(42, view.getInt(1));
            assertTrue(copy.contentEquals(view));
            copy.close();
            assertThrows(IllegalStateException.class, () -> copy.getInt(0));
            copy.close(); // idempotent
            assertThrows(IllegalArgumentException.class, () -> Tensor.view(seg, DType.I64, 3));
        }
    }

    @Test
    void shapesAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[4], 3));
        assertThrows(IllegalArgumentException.class, () -> Tensor.allocate(DType.F32, 2, -1));
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(DType.F32, new byte[1]));
        try (Tensor scalar = Tensor.allocate(DType.F64)) {
            assertEquals(1, scalar.numel());
            assertEquals(0, scalar.rank());
        }
        try (Tensor t = Tensor.of(new float[] {1f})) {
            assertThrows(IllegalArgumentException.class, t::toIntArray);
        }
    }
}
