// Simulation-only top around the generated processor (`ddfa_processor`).
//
// The processor's own ports are the boards' host byte stream (8-bit valid/ready in,
// 8-bit valid/ready out: docs/HOST-PROTOCOL.md). Driving that stream one byte per
// clock from Python costs a simulator callback per byte, so this wrapper plays it from
// a buffer instead: the testbench writes a batch of command bytes into `in_buf`
// (64-bit words, little-endian byte lanes), toggles `req`, and waits for `ack` to
// follow; meanwhile the wrapper feeds the bytes to `i` one per clock (whenever the
// processor is ready) and stores every reply byte from `o` in `out_buf`. The
// processor sees exactly the byte sequence a UART host would send, only without gaps,
// unless `stall` asks for random gaps on both sides (backpressure).
//
// A batch is in_buf bytes [in_start, in_start + in_len); it is finished when all of
// them were taken and `out_expect` reply bytes were received. `out_count` then holds
// the number received (more, if the processor sent more than expected before the
// batch ended), `cycles` the clocks the batch took.
`default_nettype none

module ddfa_sim_top #(
    parameter IN_WORDS  = 4096,     // 64-bit words of the command buffer
    parameter OUT_WORDS = 65536,    // 64-bit words of the reply buffer
    parameter HALF_PERIOD = 5       // clock half period, in time units (1 ns)
) (
    output reg         clk,          // made here: no simulator callback per clock edge
    input  wire        rst,
    input  wire        req,          // toggle: start a batch
    output reg         ack,          // follows req when the batch is done
    input  wire [31:0] in_start,     // first command byte of the batch
    input  wire [31:0] in_len,       // command bytes in the batch
    input  wire [31:0] out_expect,   // reply bytes the batch must produce
    input  wire [3:0]  stall,        // 0: no gaps; k: a gap on about k/16 of the cycles
    output reg  [31:0] out_count,    // reply bytes received in this batch
    output reg  [63:0] cycles,       // clocks of this batch
    output reg  [63:0] total_cycles, // clocks since reset
    output wire        busy          // the processor's busy output
);
    initial clk = 1'b0;
    always #HALF_PERIOD clk = ~clk;

    reg [63:0] in_buf  [0:IN_WORDS-1];
    reg [63:0] out_buf [0:OUT_WORDS-1];

    reg        running;
    reg [31:0] in_ptr;               // next command byte (absolute)
    reg [31:0] in_end;
    reg [15:0] lfsr;                 // stall pattern

    wire [63:0] in_word = in_buf[in_ptr[31:3]];
    wire [7:0]  in_byte = in_word[{in_ptr[2:0], 3'b000} +: 8];

    wire gap_in  = (stall != 4'd0) && (lfsr[3:0] < stall);
    wire gap_out = (stall != 4'd0) && (lfsr[11:8] < stall);

    wire       i_valid = running && (in_ptr != in_end) && !gap_in;
    wire       i_ready;
    wire [7:0] o_payload;
    wire       o_valid;
    wire       o_ready = running && !gap_out;

    ddfa_processor dut (
        .clk(clk),
        .rst(rst),
        .i__valid(i_valid),
        .i__ready(i_ready),
        .i__payload(in_byte),
        .o__valid(o_valid),
        .o__ready(o_ready),
        .o__payload(o_payload),
        .busy(busy)
    );

    reg [63:0] out_word;             // the reply word being filled
    wire [63:0] out_next = (out_word & ~(64'hFF << {out_count[2:0], 3'b000}))
                           | ({56'd0, o_payload} << {out_count[2:0], 3'b000});

    always @(posedge clk) begin
        if (rst) begin
            ack <= 1'b0;
            running <= 1'b0;
            in_ptr <= 32'd0;
            in_end <= 32'd0;
            out_count <= 32'd0;
            cycles <= 64'd0;
            total_cycles <= 64'd0;
            lfsr <= 16'hACE1;
            out_word <= 64'd0;
        end else begin
            total_cycles <= total_cycles + 64'd1;
            lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
            if (!running && req != ack) begin
                running <= 1'b1;
                in_ptr <= in_start;
                in_end <= in_start + in_len;
                out_count <= 32'd0;
                out_word <= 64'd0;
                cycles <= 64'd0;
            end else if (running) begin
                cycles <= cycles + 64'd1;
                if (i_valid && i_ready)
                    in_ptr <= in_ptr + 32'd1;
                if (o_valid && o_ready) begin
                    out_count <= out_count + 32'd1;
                    out_word <= out_next;
                    out_buf[out_count[31:3]] <= out_next;
                end
                if (in_ptr == in_end && out_count == out_expect) begin
                    running <= 1'b0;
                    ack <= req;
                end
            end
        end
    end
endmodule

`default_nettype wire
