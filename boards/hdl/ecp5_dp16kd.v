// Simulation model of the ECP5 DP16KD block RAM as Yosys's synth_ecp5 instantiates it
// (share/lattice/brams_map_16kd.v): two synchronous ports of 1, 2, 4, 9 or 18 bits,
// no output register (REGMODE "NOREG"), synchronous or asynchronous reset of the read data, chip
// selects unused, WRITEMODE NORMAL (the read data keeps its value on a write),
// WRITETHROUGH or READBEFOREWRITE, and the initial contents of INITVAL_00..3F (16 rows
// of 18 bits in 20 each). Yosys's share/ecp5/cells_sim.v has the cell's parameters
// only. The 1,024 rows of 18 bits hold a narrower port's words in their two 9-bit
// bytes, low byte first, 8 / width words of 1, 2 or 4 bits in the low 8 bits of each
// byte (bit 8 unused), one 9-bit word per byte; an 18-bit port's address bits 1:0 are
// its byte enables; when both ports write one row in the same cycle, port B's write
// wins. `ddfa simulate --netlist` simulates an ECP5 netlist with it
// (boards/netlist.py); a configuration it does not model stops the simulation at time 0.
`timescale 1ns / 1ps
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter [319:0] INITVAL_00 = 320'h0;
    parameter [319:0] INITVAL_01 = 320'h0;
    parameter [319:0] INITVAL_02 = 320'h0;
    parameter [319:0] INITVAL_03 = 320'h0;
    parameter [319:0] INITVAL_04 = 320'h0;
    parameter [319:0] INITVAL_05 = 320'h0;
    parameter [319:0] INITVAL_06 = 320'h0;
    parameter [319:0] INITVAL_07 = 320'h0;
    parameter [319:0] INITVAL_08 = 320'h0;
    parameter [319:0] INITVAL_09 = 320'h0;
    parameter [319:0] INITVAL_0A = 320'h0;
    parameter [319:0] INITVAL_0B = 320'h0;
    parameter [319:0] INITVAL_0C = 320'h0;
    parameter [319:0] INITVAL_0D = 320'h0;
    parameter [319:0] INITVAL_0E = 320'h0;
    parameter [319:0] INITVAL_0F = 320'h0;
    parameter [319:0] INITVAL_10 = 320'h0;
    parameter [319:0] INITVAL_11 = 320'h0;
    parameter [319:0] INITVAL_12 = 320'h0;
    parameter [319:0] INITVAL_13 = 320'h0;
    parameter [319:0] INITVAL_14 = 320'h0;
    parameter [319:0] INITVAL_15 = 320'h0;
    parameter [319:0] INITVAL_16 = 320'h0;
    parameter [319:0] INITVAL_17 = 320'h0;
    parameter [319:0] INITVAL_18 = 320'h0;
    parameter [319:0] INITVAL_19 = 320'h0;
    parameter [319:0] INITVAL_1A = 320'h0;
    parameter [319:0] INITVAL_1B = 320'h0;
    parameter [319:0] INITVAL_1C = 320'h0;
    parameter [319:0] INITVAL_1D = 320'h0;
    parameter [319:0] INITVAL_1E = 320'h0;
    parameter [319:0] INITVAL_1F = 320'h0;
    parameter [319:0] INITVAL_20 = 320'h0;
    parameter [319:0] INITVAL_21 = 320'h0;
    parameter [319:0] INITVAL_22 = 320'h0;
    parameter [319:0] INITVAL_23 = 320'h0;
    parameter [319:0] INITVAL_24 = 320'h0;
    parameter [319:0] INITVAL_25 = 320'h0;
    parameter [319:0] INITVAL_26 = 320'h0;
    parameter [319:0] INITVAL_27 = 320'h0;
    parameter [319:0] INITVAL_28 = 320'h0;
    parameter [319:0] INITVAL_29 = 320'h0;
    parameter [319:0] INITVAL_2A = 320'h0;
    parameter [319:0] INITVAL_2B = 320'h0;
    parameter [319:0] INITVAL_2C = 320'h0;
    parameter [319:0] INITVAL_2D = 320'h0;
    parameter [319:0] INITVAL_2E = 320'h0;
    parameter [319:0] INITVAL_2F = 320'h0;
    parameter [319:0] INITVAL_30 = 320'h0;
    parameter [319:0] INITVAL_31 = 320'h0;
    parameter [319:0] INITVAL_32 = 320'h0;
    parameter [319:0] INITVAL_33 = 320'h0;
    parameter [319:0] INITVAL_34 = 320'h0;
    parameter [319:0] INITVAL_35 = 320'h0;
    parameter [319:0] INITVAL_36 = 320'h0;
    parameter [319:0] INITVAL_37 = 320'h0;
    parameter [319:0] INITVAL_38 = 320'h0;
    parameter [319:0] INITVAL_39 = 320'h0;
    parameter [319:0] INITVAL_3A = 320'h0;
    parameter [319:0] INITVAL_3B = 320'h0;
    parameter [319:0] INITVAL_3C = 320'h0;
    parameter [319:0] INITVAL_3D = 320'h0;
    parameter [319:0] INITVAL_3E = 320'h0;
    parameter [319:0] INITVAL_3F = 320'h0;

    reg [17:0] mem [0:1023];
    integer i;
    initial begin
        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CLKAMUX != "CLKA"
                || CLKBMUX != "CLKB" || CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
            $display("DP16KD %m: this configuration is not modelled (boards/hdl/ecp5_dp16kd.v)");
            $finish;
        end
        for (i = 0; i < 16; i = i + 1) mem[0*16 + i] = INITVAL_00[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[1*16 + i] = INITVAL_01[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[2*16 + i] = INITVAL_02[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[3*16 + i] = INITVAL_03[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[4*16 + i] = INITVAL_04[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[5*16 + i] = INITVAL_05[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[6*16 + i] = INITVAL_06[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[7*16 + i] = INITVAL_07[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[8*16 + i] = INITVAL_08[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[9*16 + i] = INITVAL_09[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[10*16 + i] = INITVAL_0A[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[11*16 + i] = INITVAL_0B[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[12*16 + i] = INITVAL_0C[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[13*16 + i] = INITVAL_0D[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[14*16 + i] = INITVAL_0E[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[15*16 + i] = INITVAL_0F[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[16*16 + i] = INITVAL_10[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[17*16 + i] = INITVAL_11[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[18*16 + i] = INITVAL_12[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[19*16 + i] = INITVAL_13[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[20*16 + i] = INITVAL_14[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[21*16 + i] = INITVAL_15[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[22*16 + i] = INITVAL_16[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[23*16 + i] = INITVAL_17[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[24*16 + i] = INITVAL_18[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[25*16 + i] = INITVAL_19[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[26*16 + i] = INITVAL_1A[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[27*16 + i] = INITVAL_1B[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[28*16 + i] = INITVAL_1C[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[29*16 + i] = INITVAL_1D[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[30*16 + i] = INITVAL_1E[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[31*16 + i] = INITVAL_1F[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[32*16 + i] = INITVAL_20[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[33*16 + i] = INITVAL_21[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[34*16 + i] = INITVAL_22[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[35*16 + i] = INITVAL_23[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[36*16 + i] = INITVAL_24[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[37*16 + i] = INITVAL_25[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[38*16 + i] = INITVAL_26[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[39*16 + i] = INITVAL_27[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[40*16 + i] = INITVAL_28[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[41*16 + i] = INITVAL_29[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[42*16 + i] = INITVAL_2A[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[43*16 + i] = INITVAL_2B[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[44*16 + i] = INITVAL_2C[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[45*16 + i] = INITVAL_2D[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[46*16 + i] = INITVAL_2E[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[47*16 + i] = INITVAL_2F[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[48*16 + i] = INITVAL_30[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[49*16 + i] = INITVAL_31[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[50*16 + i] = INITVAL_32[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[51*16 + i] = INITVAL_33[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[52*16 + i] = INITVAL_34[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[53*16 + i] = INITVAL_35[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[54*16 + i] = INITVAL_36[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[55*16 + i] = INITVAL_37[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[56*16 + i] = INITVAL_38[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[57*16 + i] = INITVAL_39[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[58*16 + i] = INITVAL_3A[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[59*16 + i] = INITVAL_3B[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[60*16 + i] = INITVAL_3C[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[61*16 + i] = INITVAL_3D[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[62*16 + i] = INITVAL_3E[i*20 +: 18];
        for (i = 0; i < 16; i = i + 1) mem[63*16 + i] = INITVAL_3F[i*20 +: 18];
    end

    // ---- port A ----
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    reg [17:0] doa = 18'd0;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    wire [9:0] rowa = ada[13:4];
    wire [17:0] maska;
    wire [4:0] lsba;
    dp16kd_lane #(.WIDTH(DATA_WIDTH_A)) lanea (.ad(ada), .lsb(lsba), .mask(maska));
    wire [17:0] olda = mem[rowa];
    wire [17:0] word_rda = (olda >> lsba) & (DATA_WIDTH_A == 18 ? 18'h3ffff : ((18'd1 << DATA_WIDTH_A) - 18'd1));
    wire [17:0] bea = DATA_WIDTH_A == 18 ? {{9{ada[1]}}, {9{ada[0]}}} : 18'h3ffff;
    wire [17:0] new_rowa = (olda & ~(maska & bea)) | ((dia << lsba) & maska & bea);
    wire rst_asynca = RESETMODE == "ASYNC" && RSTA;
    always @(posedge CLKA or posedge rst_asynca) begin
        if (RSTA)
            doa <= 18'd0;
        else if (CEA) begin
            if (WEA) begin
                mem[rowa] <= new_rowa;
                if (WRITEMODE_A == "WRITETHROUGH")
                    doa <= (new_rowa >> lsba) & (DATA_WIDTH_A == 18 ? 18'h3ffff : ((18'd1 << DATA_WIDTH_A) - 18'd1));
                else if (WRITEMODE_A == "READBEFOREWRITE")
                    doa <= word_rda;
            end else
                doa <= word_rda;
        end
    end

    // ---- port B ----
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    reg [17:0] dob = 18'd0;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
    wire [9:0] rowb = adb[13:4];
    wire [17:0] maskb;
    wire [4:0] lsbb;
    dp16kd_lane #(.WIDTH(DATA_WIDTH_B)) laneb (.ad(adb), .lsb(lsbb), .mask(maskb));
    wire [17:0] oldb = mem[rowb];
    wire [17:0] word_rdb = (oldb >> lsbb) & (DATA_WIDTH_B == 18 ? 18'h3ffff : ((18'd1 << DATA_WIDTH_B) - 18'd1));
    wire [17:0] beb = DATA_WIDTH_B == 18 ? {{9{adb[1]}}, {9{adb[0]}}} : 18'h3ffff;
    wire [17:0] new_rowb = (oldb & ~(maskb & beb)) | ((dib << lsbb) & maskb & beb);
    wire rst_asyncb = RESETMODE == "ASYNC" && RSTB;
    always @(posedge CLKB or posedge rst_asyncb) begin
        if (RSTB)
            dob <= 18'd0;
        else if (CEB) begin
            if (WEB) begin
                mem[rowb] <= new_rowb;
                if (WRITEMODE_B == "WRITETHROUGH")
                    dob <= (new_rowb >> lsbb) & (DATA_WIDTH_B == 18 ? 18'h3ffff : ((18'd1 << DATA_WIDTH_B) - 18'd1));
                else if (WRITEMODE_B == "READBEFOREWRITE")
                    dob <= word_rdb;
            end else
                dob <= word_rdb;
        end
    end
endmodule

// Where a port's word lies in its row: the lowest bit (lsb) and the bits (mask).
module dp16kd_lane #(parameter WIDTH = 18) (input [13:0] ad, output [4:0] lsb, output [17:0] mask);
    // words per 9-bit byte: 8 / WIDTH for WIDTH < 9, 1 for 9; an 18-bit word fills the row
    // the row is ad[13:4]; the word's place in it, ad[3:0] for 1 bit to ad[3] for 9 bits
    wire [3:0] slot = WIDTH == 1 ? ad[3:0] : WIDTH == 2 ? {1'b0, ad[3:1]} : WIDTH == 4 ? {2'b0, ad[3:2]}
                    : WIDTH == 9 ? {3'b0, ad[3]} : 4'd0;
    wire [3:0] per_byte = WIDTH < 9 ? 8 / WIDTH : 1;
    wire byte_index = WIDTH == 18 ? 1'b0 : slot >= per_byte;
    wire [3:0] in_byte = WIDTH == 18 ? 4'd0 : slot - (byte_index ? per_byte : 4'd0);
    assign lsb = WIDTH == 18 ? 5'd0 : byte_index * 9 + in_byte * WIDTH;
    assign mask = WIDTH == 18 ? 18'h3ffff : ((18'd1 << WIDTH) - 18'd1) << lsb;
endmodule
